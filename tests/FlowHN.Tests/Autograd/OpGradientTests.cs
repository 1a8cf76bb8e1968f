using FlowHN.Autograd;
using FlowHN.Runtime;
using FlowHN.Tensors;

using static FlowHN.Tests.GradientAssert;

namespace FlowHN.Tests.Autograd;

/// <summary>Finite-difference gradient checks of every differentiable op.</summary>
public class OpGradientTests
{
    private static Session Device => TestDevice.Cpu;

    private static Tensor Input(int seed, double scale, params int[] shape) =>
        GradientAssert.Input(Reference.Random((int)Tensor.ShapeLength(shape), seed, scale), shape);

    [Fact]
    public void Add() { var a = Input(1, 1, 3, 5); var b = Input(2, 1, 3, 5); AssertGradients(() => Ops.Add(a, b), a, b); }

    [Fact]
    public void Mul() { var a = Input(3, 1, 4, 3); var b = Input(4, 1, 4, 3); AssertGradients(() => Ops.Mul(a, b), a, b); }

    [Fact]
    public void Scale() { var a = Input(5, 1, 7); AssertGradients(() => Ops.Scale(a, -2.5f), a); }

    [Fact]
    public void Silu() { var a = Input(6, 2, 23); AssertGradients(() => Ops.Silu(a), a); }

    [Fact]
    public void Softplus() { var a = Input(7, 2, 23); AssertGradients(() => Ops.Softplus(a), a); }

    [Fact]
    public void Exp() { var a = Input(8, 0.5, 23); AssertGradients(() => Ops.Exp(a), a); }

    [Fact]
    public void SwiGlu() { var a = Input(9, 1, 5, 4); var b = Input(10, 1, 5, 4); AssertGradients(() => Ops.SwiGlu(a, b), a, b); }

    [Fact]
    public void SumAndMean()
    {
        var a = Input(11, 1, 6, 7);
        AssertGradients(() => Ops.Add(Ops.Reshape(Ops.Sum(a), 1), Ops.Reshape(Ops.Mean(Ops.Mul(a, a)), 1)), a);
    }

    [Fact]
    public void MatMul()
    {
        var a = Input(12, 1, 5, 7);
        var b = Input(13, 1, 7, 3);
        AssertGradients(() => Ops.MatMul(a, b), a, b);
    }

    [Fact]
    public void BatchedMatMulWithTransposedOperand()
    {
        var a = Input(14, 1, 2, 4, 6);
        var b = Input(15, 1, 2, 5, 6);
        AssertGradients(() => Ops.MatMul(a, Ops.TransposeView(b, 1, 2)), a, b);
    }

    [Fact]
    public void Linear()
    {
        var x = Input(16, 1, 2, 3, 8);
        var w = Input(17, 0.5, 5, 8);
        AssertGradients(() => Ops.Linear(x, w), x, w);
    }

    [Fact]
    public void RmsNorm()
    {
        var x = Input(18, 1, 6, 9);
        var w = Input(19, 1, 9);
        AssertGradients(() => Ops.RmsNorm(x, w), x, w);
    }

    [Fact]
    public void FusedResidualAddAndNorm()
    {
        var x = Input(27, 1, 5, 9);
        var y = Input(28, 1, 5, 9);
        var w = Input(29, 1, 9);
        AssertGradients(() =>
        {
            var (sum, normed) = Ops.AddRmsNorm(x, y, w);
            return Ops.Add(Ops.Scale(sum, 0.5f), normed); // both outputs carry gradient
        }, x, y, w);
    }

    [Fact]
    public void FusedResidualAddAndNormWithOnlyTheNormUsed()
    {
        var x = Input(30, 1, 4, 6);
        var y = Input(31, 1, 4, 6);
        var w = Input(32, 1, 6);
        AssertGradients(() => Ops.AddRmsNorm(x, y, w).Normed, x, y, w);
    }

    [Fact]
    public void TransposeAndReshape()
    {
        var x = Input(20, 1, 3, 4, 5);
        AssertGradients(() => Ops.Reshape(Ops.Transpose(x, 0, 2), 5, 12), x);
    }

    [Fact]
    public void TransposeViewIntoMatMul()
    {
        var x = Input(24, 1, 4, 3);
        var w = Input(25, 1, 4, 5);
        AssertGradients(() => Ops.MatMul(Ops.TransposeView(x, 0, 1), w), x, w);
    }

    [Fact]
    public void SliceLastOfAStridedBatch()
    {
        var x = Input(26, 1, 2, 3, 7);
        AssertGradients(() => Ops.Add(Ops.SliceLast(x, 1, 3), Ops.Scale(Ops.SliceLast(x, 4, 3), 2f)), x);
    }

    [Fact]
    public void Embedding()
    {
        var table = Input(21, 1, 11, 6);
        using var ids = TokenIndex.FromHost(Device, [3, 1, 3, 10, 0, 3, 7], 7);
        AssertGradients(() => Ops.Embedding(ids, table), table);
    }

    [Fact]
    public void CrossEntropyWithIgnoredTargets()
    {
        var logits = Input(22, 2, 6, 13);
        using var scope = Device.BeginScope();
        var targets = Tensor.FromArray(Device, [4, -1, 12, 0, 7, -1], 6);
        var results = GradCheck.Run(Device, () => Ops.CrossEntropy(logits, targets), [logits]);
        Assert.True(results[0].RelativeError < Tolerance, results[0].ToString());
    }

    [Fact]
    public void CrossEntropyWritingItsGradientOverTheLogitsGivesTheSameGradients()
    {
        using var scope = Device.BeginScope();
        var targets = Tensor.FromArray(Device, [4, -1, 12, 0, 7, -1], 6);
        float[] Gradient(bool overwrite)
        {
            var w = Tensor.FromArray(Device, Reference.Random(6 * 13, 33, 2), 6, 13);
            w.RequiresGrad = true;
            var logits = Ops.Scale(w, 1.5f); // an op between, so the logits are an intermediate as in a model
            Device.Tape.Backward(Ops.CrossEntropy(logits, targets, overwriteLogits: overwrite));
            return w.Grad!.ToArray();
        }
        Assert.Equal(Gradient(overwrite: false), Gradient(overwrite: true));
    }

    [Fact]
    public void LinearWithPaddingRowsReturnsTheRealColumnsAndGivesPaddingNoGradient()
    {
        // W has 8 rows, 5 real: the product runs over all 8, the output is the [.., 5] view of rows 8 floats apart.
        var x = Input(34, 1, 2, 3, 4);
        var w = Input(35, 1, 8, 4);
        using (var scope = Device.BeginScope())
        {
            var y = Ops.Linear(x, w, 5);
            Assert.Equal([2, 3, 5], y.Shape);
            Assert.Equal(8, y.Strides[^2]);
            var full = Ops.Linear(x, w).ToArray();
            Assert.Equal(Enumerable.Range(0, 6).SelectMany(r => full[(r * 8)..(r * 8 + 5)]), y.ToArray());
        }
        AssertGradients(() => Ops.Linear(x, w, 5), x, w);
    }

    [Fact]
    public void CrossEntropyOfPaddedLogitsMatchesFiniteDifferencesAndSkipsThePaddingRows()
    {
        var x = Input(36, 1, 6, 4);
        var w = Input(37, 1, 16, 4);
        using var scope = Device.BeginScope();
        var targets = Tensor.FromArray(Device, [4, -1, 12, 0, 7, 1], 6);
        foreach (bool overwrite in new[] { false, true })
        {
            Tensor Loss() => Ops.CrossEntropy(Ops.Linear(x, w, 13), targets, overwriteLogits: overwrite);
            var results = GradCheck.Run(Device, Loss, [x, w]);
            Assert.All(results, r => Assert.True(r.RelativeError < Tolerance, r.ToString()));
            x.Grad = w.Grad = null; // they lived in the check's scope
            Device.Tape.Backward(Loss());
            Assert.All(w.Grad!.ToArray()[(13 * 4)..], g => Assert.Equal(0f, g));
            Assert.Contains(w.Grad!.ToArray()[..(13 * 4)], g => g != 0);
            x.Grad = w.Grad = null;
        }
    }

    [Fact]
    public void GradCheckRejectsAWrongGradient()
    {
        // Exp's forward with Silu's backward: the checker must notice.
        var a = Input(23, 1, 9);
        var results = GradCheck.Run(Device, () =>
        {
            var y = Tensor.Empty(Device, a.Shape);
            Device.Kernels.Elementwise.Map(FlowHN.Kernels.UnaryOp.Exp, a.View, y.View);
            if (!Device.GradEnabled) return y;
            y.RequiresGrad = true;
            Device.Tape.Record(() => Device.Kernels.Elementwise.MapBackward(FlowHN.Kernels.UnaryOp.Silu, a.View, y.Grad!.View,
                Gradients.For(a).View));
            return y;
        }, [a]);
        Assert.True(results[0].RelativeError > 0.1, results[0].ToString());
    }
}
