using FlowHN.Autograd;
using FlowHN.Diagnostics;
using FlowHN.Tensors;

namespace FlowHN.Tests.Kernels;

/// <summary>Rotary embedding: the reference, in-place use, the inverse, and what it is for (relative positions).</summary>
public class RopeTests
{
    private const int Batch = 2, Length = 7, Heads = 3, HeadDim = 10;

    private static float[] Input(int seed) => Reference.Random(Batch * Length * Heads * HeadDim, seed);

    [Fact]
    public void MatchesFloat64ReferenceInPlaceAndOutOfPlace()
    {
        var device = TestDevice.Cpu;
        using var scope = device.BeginScope();
        var x = Input(1);
        int[] positions = [3, 9, 4, 0, 250, 17, 1];
        var s = FlowHN.Kernels.RopeLauncher.Shape(Batch, Length, Heads, HeadDim);
        var xt = Tensor.FromArray(device, x, Batch, Length, Heads, HeadDim);
        var pt = Tensor.FromArray(device, positions, Length);
        var outOfPlace = Ops.Rope(xt, pt).ToArray();
        device.Kernels.Rope.Forward(s, xt.View, xt.View, pt.IntView);
        var expected = HostReference.Rope(x, positions, Batch, Length, Heads, HeadDim, 10000);
        Reference.AssertClose(outOfPlace, expected, 1e-5);
        Assert.Equal(outOfPlace, xt.ToArray());
    }

    [Fact]
    public void BackwardRotationUndoesTheForward()
    {
        var device = TestDevice.Cpu;
        using var scope = device.BeginScope();
        var x = Input(2);
        var s = FlowHN.Kernels.RopeLauncher.Shape(Batch, Length, Heads, HeadDim);
        var pt = Ops.Positions(device, Length, first: 40);
        var y = Ops.Rope(Tensor.FromArray(device, x, Batch, Length, Heads, HeadDim), pt);
        var back = Tensor.Zeros(device, y.Shape);
        device.Kernels.Rope.Backward(s, y.View, back.View, pt.IntView);
        Reference.AssertClose(back.ToArray(), Reference.ToDouble(x), 1e-5);
        Assert.True(Reference.RelativeError(y.ToArray(), Reference.ToDouble(x)) > 0.1, "the rotation changed nothing");
    }

    [Fact]
    public void ScoresDependOnlyOnTheDistanceBetweenPositions()
    {
        // rope(q, m) . rope(k, n) is a function of m - n: shifting both positions keeps every score.
        var device = TestDevice.Cpu;
        using var scope = device.BeginScope();
        var q = Tensor.FromArray(device, Input(3), Batch, Length, Heads, HeadDim);
        var k = Tensor.FromArray(device, Input(4), Batch, Length, Heads, HeadDim);
        double[] Scores(int shift)
        {
            var positions = Ops.Positions(device, Length, first: shift);
            var rq = Ops.Rope(q, positions).ToArray();
            var rk = Ops.Rope(k, positions).ToArray();
            // Query at token 6 against keys at every token, per batch row and head.
            var scores = new List<double>();
            for (int b = 0; b < Batch; b++)
                for (int h = 0; h < Heads; h++)
                    for (int j = 0; j < Length; j++)
                    {
                        double dot = 0;
                        for (int e = 0; e < HeadDim; e++)
                            dot += rq[((b * Length + 6) * Heads + h) * HeadDim + e] * (double)rk[((b * Length + j) * Heads + h) * HeadDim + e];
                        scores.Add(dot);
                    }
            return scores.ToArray();
        }
        var unshifted = Scores(0);
        Reference.AssertClose(Scores(23).Select(x => (float)x).ToArray(), unshifted, 1e-5);
    }
}
