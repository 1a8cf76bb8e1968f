using FlowHN.Autograd;
using FlowHN.Diagnostics;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Tests.Kernels;

/// <summary>The causal depthwise convolution against the float64 reference, carried state, determinism.</summary>
public class CausalConvTests
{
    private const double Tolerance = 1e-5;

    /// <summary>Output, then (with dy) dx, dWeight, dBias and dState of one call through the launcher.</summary>
    private static float[][] Run(Session device, float[] x, float[] w, float[] bias, float[]? state, int batch, int length,
        int channels, bool silu, int chunk, float[]? dy = null)
    {
        using var scope = device.BeginScope();
        int width = w.Length / channels;
        var kernels = device.Kernels.CausalConv;
        var s = kernels.Shape(batch, length, channels, width, silu, state is not null, chunk);
        Tensor Up(float[] data) => Tensor.FromArray(device, data, data.Length);
        var (xt, wt, bt) = (Up(x), Up(w), Up(bias));
        var stateView = state is null ? default : Up(state).View;
        var y = Tensor.Empty(device, [x.Length]);
        kernels.Forward(s, xt.View, wt.View, bt.View, stateView, y.View);
        if (dy is null) return [y.ToArray()];
        var (dx, dw, db) = (Tensor.Zeros(device, [x.Length]), Tensor.Zeros(device, [w.Length]), Tensor.Zeros(device, [channels]));
        var dState = Tensor.Zeros(device, [Math.Max(1, state?.Length ?? 0)]);
        kernels.Backward(s, xt.View, wt.View, bt.View, stateView, Up(dy).View, dx.View, dw.View, db.View,
            state is null ? default : dState.View);
        return [y.ToArray(), dx.ToArray(), dw.ToArray(), db.ToArray(), dState.ToArray()];
    }

    public static IEnumerable<object[]> Cases() =>
        from c in new[]
        {
            new[] { 4, 1, 1, 5 },   // Mamba's width, SiLU, a state, chunks of 5 over 23 steps
            new[] { 4, 0, 0, 23 },  // one chunk, no SiLU, no state
            new[] { 3, 1, 0, 4 },   // narrower width
            new[] { 2, 0, 1, 1 },   // width 2 with a state, one step per chunk
            new[] { 1, 1, 0, 0 },   // width 1 (a per-channel affine map), the launcher's chunk
        }
        from device in new[] { "default", "wide" }
        select new object[] { device, c[0], c[1] == 1, c[2] == 1, c[3] };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardAndBackwardMatchFloat64Reference(string device, int width, bool silu, bool withState, int chunk)
    {
        const int batch = 2, length = 23, channels = 6;
        var x = Reference.Random(batch * length * channels, width * 10 + chunk);
        var w = Reference.Random(channels * width, 2, 0.5);
        var bias = Reference.Random(channels, 3);
        var state = withState ? Reference.Random(batch * (width - 1) * channels, 4) : null;
        var dy = Reference.Random(x.Length, 5);
        var result = Run(TestDevice.Get(device), x, w, bias, state, batch, length, channels, silu, chunk, dy);
        Reference.AssertClose(result[0], HostReference.CausalConv(x, w, bias, state, batch, length, channels, width, silu), Tolerance);
        var r = HostReference.CausalConvBackward(x, w, bias, state, dy, batch, length, channels, width, silu);
        Reference.AssertClose(result[1], r.Dx, 1e-5);
        Reference.AssertClose(result[2], r.DWeight, 1e-5);
        Reference.AssertClose(result[3], r.DBias, 1e-5);
        if (withState) Reference.AssertClose(result[4], r.DState, 1e-5);
    }

    [Theory]
    [MemberData(nameof(TestDevice.Both), MemberType = typeof(TestDevice))]
    public void TwoSegmentsWithTheCarriedStateEqualOnePass(string device)
    {
        var d = TestDevice.Get(device);
        const int batch = 2, length = 17, first = 6, channels = 5, width = 4;
        var x = Reference.Random(batch * length * channels, 8);
        using var scope = d.BeginScope();
        var w = Tensor.FromArray(d, Reference.Random(channels * width, 9), channels, width);
        var bias = Tensor.FromArray(d, Reference.Random(channels, 10), channels);
        Tensor Segment(int start, int count) => Tensor.FromArray(d, Enumerable.Range(0, batch)
            .SelectMany(b => x.Skip((b * length + start) * channels).Take(count * channels)).ToArray(), batch, count, channels);
        var whole = Ops.CausalConv1d(Segment(0, length), w, bias, silu: true).ToArray();
        var (y1, carried) = Ops.CausalConv1dWithState(Segment(0, first), w, bias, silu: true);
        var (y2, _) = Ops.CausalConv1dWithState(Segment(first, length - first), w, bias, silu: true, carried);
        var a = y1.ToArray();
        var b2 = y2.ToArray();
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < length; t++)
                for (int c = 0; c < channels; c++)
                {
                    float segment = t < first ? a[(b * first + t) * channels + c] : b2[(b * (length - first) + t - first) * channels + c];
                    Assert.Equal(whole[(b * length + t) * channels + c], segment);
                }
    }

    [Theory]
    [MemberData(nameof(TestDevice.Both), MemberType = typeof(TestDevice))]
    public void BackwardIsBitwiseDeterministic(string device)
    {
        const int batch = 3, length = 31, channels = 7;
        var x = Reference.Random(batch * length * channels, 11);
        var w = Reference.Random(channels * 4, 12);
        var bias = Reference.Random(channels, 13);
        var state = Reference.Random(batch * 3 * channels, 14);
        var dy = Reference.Random(x.Length, 15);
        var first = Run(TestDevice.Get(device), x, w, bias, state, batch, length, channels, true, 6, dy);
        var second = Run(TestDevice.Get(device), x, w, bias, state, batch, length, channels, true, 6, dy);
        for (int i = 0; i < first.Length; i++)
        {
            Assert.Equal(first[i], second[i]);
            Assert.Contains(first[i], v => v != 0f);
        }
    }

    [Fact]
    public void WidthsBeyondTheWindowAreRejected()
    {
        var d = TestDevice.Cpu;
        using var scope = d.BeginScope();
        var x = Tensor.Zeros(d, [1, 8, 3]);
        Assert.Throws<ArgumentException>(() => Ops.CausalConv1d(x, Tensor.Zeros(d, [3, 5]), Tensor.Zeros(d, [3]), silu: false));
        Assert.Throws<ArgumentException>(() => Ops.CausalConv1d(x, Tensor.Zeros(d, [3, 4]), Tensor.Zeros(d, [3]), silu: false,
            Tensor.Zeros(d, [1, 4, 3])));
    }
}
