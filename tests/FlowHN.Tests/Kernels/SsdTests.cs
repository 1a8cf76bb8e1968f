using FlowHN.Autograd;
using FlowHN.Diagnostics;
using FlowHN.Kernels;
using FlowHN.Runtime;
using FlowHN.Tensors;

using static FlowHN.Tests.GradientAssert;

namespace FlowHN.Tests.Kernels;

/// <summary>
/// Mamba-2's chunked SSD scan against the float64 sequential recurrence: forward and every gradient, the
/// reference's own gradients against finite differences, independence of the chunk length, continuing from a
/// carried state, bitwise reproducibility and the op's gradient check.
/// </summary>
public class SsdTests
{
    private const double Tolerance = 1e-5;

    private static SsdData RandomSsd(int seed, int batch, int length, int heads, int headDim, int groups, int states, bool withInitial) =>
        KernelChecks.RandomSsdData(new Random(seed), new KernelChecks.SsdCheckSize(batch, length, heads, headDim, groups, states, 0, withInitial));

    public static IEnumerable<object[]> Shapes() =>
        from shape in new[]
        {
            new[] { 37, 4, 3, 2, 5, 8, 0 },  // several chunks, the last one partial, grouped B/C
            new[] { 19, 2, 4, 1, 6, 5, 1 },  // one group, an initial state
            new[] { 1, 3, 2, 3, 4, 4, 1 },   // one step, a group per head
            new[] { 70, 2, 2, 1, 3, 0, 1 },  // the launcher's own chunk (64)
        }
        from device in new[] { "default", "wide" }
        select new object[] { device, shape[0], shape[1], shape[2], shape[3], shape[4], shape[5], shape[6] == 1 };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void ForwardAndGradientsMatchTheSequentialFloat64Reference(string device, int length, int heads, int headDim, int groups,
        int states, int chunk, bool withInitial)
    {
        var x = RandomSsd(length * 31 + heads, 2, length, heads, headDim, groups, states, withInitial);
        var dy = Reference.Random(x.X.Length, 3);
        var d = TestDevice.Get(device);
        using var scope = d.BeginScope();
        var result = KernelChecks.RunSsd(d, x, chunk, dy);
        var (y, final) = HostReference.Ssd(x);
        Reference.AssertClose(result[0], y, Tolerance);
        Reference.AssertClose(result[1], final, Tolerance);
        var r = HostReference.SsdBackward(x, dy);
        var expected = new[] { r.DX, r.DDt, r.DDtBias, r.DALog, r.DB, r.DC, r.DD, r.DInitial };
        for (int i = 0; i < (withInitial ? expected.Length : expected.Length - 1); i++)
            Reference.AssertClose(result[2 + i], expected[i], 1e-4);
    }

    [Fact]
    public void ReferenceGradientsMatchFiniteDifferencesOfTheReference()
    {
        var x = RandomSsd(11, 1, 6, 2, 3, 1, 4, withInitial: true);
        var dy = Reference.Random(x.X.Length, 12);
        var r = HostReference.SsdBackward(x, dy);
        double Loss(SsdData data)
        {
            var y = HostReference.Ssd(data).Y;
            return y.Select((v, i) => v * dy[i]).Sum();
        }
        var arrays = new[] { x.X, x.Dt, x.DtBias, x.ALog, x.B, x.C, x.D, x.Initial! };
        var expected = new[] { r.DX, r.DDt, r.DDtBias, r.DALog, r.DB, r.DC, r.DD, r.DInitial };
        const float step = 1e-2f;
        for (int a = 0; a < arrays.Length; a++)
            for (int i = 0; i < arrays[a].Length; i++)
            {
                float saved = arrays[a][i];
                arrays[a][i] = saved + step;
                double up = Loss(x);
                arrays[a][i] = saved - step;
                double down = Loss(x);
                arrays[a][i] = saved;
                double numeric = (up - down) / (2 * ((double)(saved + step) - saved));
                Assert.True(Math.Abs(numeric - expected[a][i]) <= 2e-3 * (1 + Math.Abs(numeric)),
                    $"input {a} element {i}: finite difference {numeric}, reference {expected[a][i]}");
            }
    }

    [Theory]
    [MemberData(nameof(TestDevice.Both), MemberType = typeof(TestDevice))]
    public void OutputAndGradientsDoNotDependOnTheChunkLength(string device)
    {
        var d = TestDevice.Get(device);
        var x = RandomSsd(3, 2, 45, 4, 3, 2, 5, withInitial: true);
        var dy = Reference.Random(x.X.Length, 4);
        using var scope = d.BeginScope();
        var whole = KernelChecks.RunSsd(d, x, 45, dy);
        foreach (int chunk in new[] { 1, 7, 16, 32 })
        {
            var chunked = KernelChecks.RunSsd(d, x, chunk, dy);
            for (int i = 0; i < whole.Length; i++)
            {
                Assert.Contains(whole[i], v => v != 0f);
                Reference.AssertClose(chunked[i], Reference.ToDouble(whole[i]), 1e-5);
            }
        }
    }

    [Theory]
    [MemberData(nameof(TestDevice.Both), MemberType = typeof(TestDevice))]
    public void ScanningTwoHalvesWithTheCarriedStateEqualsOnePass(string device)
    {
        var d = TestDevice.Get(device);
        const int batch = 2, length = 30, half = 13, heads = 4, headDim = 3, groups = 2, states = 5;
        var x = RandomSsd(5, batch, length, heads, headDim, groups, states, withInitial: true);
        using var scope = d.BeginScope();
        Tensor Initial() => Tensor.FromArray(d, x.Initial!, batch, heads, headDim, states);
        var (whole, wholeFinal) = Scan(d, x, 0, length, Initial());
        var (first, carried) = Scan(d, x, 0, half, Initial());
        var (second, final) = Scan(d, x, half, length - half, carried);
        int row = heads * headDim;
        var joined = new float[whole.Length];
        for (int b = 0; b < batch; b++)
        {
            Array.Copy(first, b * half * row, joined, b * length * row, half * row);
            Array.Copy(second, b * (length - half) * row, joined, (b * length + half) * row, (length - half) * row);
        }
        Reference.AssertClose(joined, Reference.ToDouble(whole), 1e-6);
        Reference.AssertClose(final.ToArray(), Reference.ToDouble(wholeFinal.ToArray()), 1e-6);
        Reference.AssertClose(joined, HostReference.Ssd(x).Y, Tolerance);
    }

    /// <summary>Ops.SsdWithState over the time steps [start, start + count) of x, in chunks of 4.</summary>
    private static (float[] Y, Tensor Final) Scan(Session d, SsdData x, int start, int count, Tensor initial)
    {
        Tensor Slice(float[] data, params int[] inner) => Tensor.FromArray(d, Enumerable.Range(0, x.Batch)
            .SelectMany(b => data.Skip((b * x.Length + start) * inner.Aggregate(1, (p, v) => p * v)).Take(count * inner.Aggregate(1, (p, v) => p * v)))
            .ToArray(), [x.Batch, count, .. inner]);
        var (y, final) = Ops.SsdWithState(Slice(x.X, x.Heads, x.HeadDim), Slice(x.Dt, x.Heads), Tensor.FromArray(d, x.DtBias, x.Heads),
            Tensor.FromArray(d, x.ALog, x.Heads), Slice(x.B, x.Groups, x.States), Slice(x.C, x.Groups, x.States),
            Tensor.FromArray(d, x.D, x.Heads), initial, chunk: 4);
        return (y.ToArray(), final);
    }

    [Theory]
    [MemberData(nameof(TestDevice.Both), MemberType = typeof(TestDevice))]
    public void BackwardIsBitwiseDeterministic(string device)
    {
        var d = TestDevice.Get(device);
        var x = RandomSsd(6, 3, 23, 4, 5, 2, 6, withInitial: true);
        var dy = Reference.Random(x.X.Length, 7);
        using var scope = d.BeginScope();
        var first = KernelChecks.RunSsd(d, x, 8, dy);
        var second = KernelChecks.RunSsd(d, x, 8, dy);
        for (int i = 0; i < first.Length; i++) Assert.Equal(first[i], second[i]);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void OpGradientsOfEveryInput(bool withInitial)
    {
        const int batch = 2, length = 9, heads = 4, headDim = 2, groups = 2, states = 3;
        var x = RandomSsd(21, batch, length, heads, headDim, groups, states, withInitial);
        var xs = Input(x.X, batch, length, heads, headDim);
        var dt = Input(x.Dt, batch, length, heads);
        var dtBias = Input(x.DtBias, heads);
        var aLog = Input(x.ALog, heads);
        var b = Input(x.B, batch, length, groups, states);
        var c = Input(x.C, batch, length, groups, states);
        var dSkip = Input(x.D, heads);
        var initial = withInitial ? Input(x.Initial!, batch, heads, headDim, states) : null;
        Tensor[] inputs = initial is null ? [xs, dt, dtBias, aLog, b, c, dSkip] : [xs, dt, dtBias, aLog, b, c, dSkip, initial];
        AssertGradients(() => Ops.Ssd(xs, dt, dtBias, aLog, b, c, dSkip, initial, chunk: 4), inputs);
    }

    [Fact]
    public void ShapesAreChecked()
    {
        var d = TestDevice.Cpu;
        using var scope = d.BeginScope();
        var x = Tensor.Zeros(d, [1, 4, 2, 3]);
        var dt = Tensor.Zeros(d, [1, 4, 2]);
        var bc = Tensor.Zeros(d, [1, 4, 1, 5]);
        var heads = Tensor.Zeros(d, [2]);
        Assert.Throws<ArgumentException>(() => Ops.Ssd(x, dt, heads, heads, bc, Tensor.Zeros(d, [1, 4, 1, 4]), heads));
        Assert.Throws<ArgumentException>(() => Ops.Ssd(x, Tensor.Zeros(d, [1, 4, 3]), heads, heads, bc, bc, heads));
        Assert.Throws<ArgumentException>(() => Ops.Ssd(x, dt, heads, heads, bc, bc, heads, Tensor.Zeros(d, [1, 2, 5, 3])));
        Assert.Throws<ArgumentException>(() => SsdLauncher.Shape(1, 4, 3, 2, 2, 5, false));
    }
}
