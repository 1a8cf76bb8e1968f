using FlowHN.Tensors;

namespace FlowHN.Autograd;

public static partial class Ops
{
    /// <summary>RMSNorm over the last axis with a learned per-feature weight.</summary>
    public static Tensor RmsNorm(Tensor x, Tensor weight, float eps = 1e-6f)
    {
        int cols = x.Dim(-1);
        if (weight.Rank != 1 || weight.Dim(0) != cols)
            throw new ArgumentException($"RmsNorm: weight {weight.ShapeString} does not match features of {x.ShapeString}.");
        int rows = (int)(x.Length / cols);
        var y = Like(x);
        var inverseRms = Tensor.Empty(x.Device, [rows]);
        var k = x.Device.Kernels.Norm;
        k.RmsNormForward(rows, cols, x.View, weight.View, y.View, inverseRms.View, eps);
        return Record(y, dy => k.RmsNormBackward(rows, cols, x.View, weight.View, dy.View, inverseRms.View,
            x.RequiresGrad ? Gradients.For(x).View : default,
            weight.RequiresGrad ? Gradients.For(weight).View : default), x, weight);
    }

    /// <summary>
    /// The residual add and the RMSNorm after it, fused: returns sum = x + y and normed = RMSNorm(sum) * weight.
    /// One backward handles both outputs' gradients.
    /// </summary>
    public static (Tensor Sum, Tensor Normed) AddRmsNorm(Tensor x, Tensor y, Tensor weight, float eps = 1e-6f)
    {
        SameShape(x, y, "AddRmsNorm");
        int cols = x.Dim(-1);
        if (weight.Rank != 1 || weight.Dim(0) != cols)
            throw new ArgumentException($"AddRmsNorm: weight {weight.ShapeString} does not match features of {x.ShapeString}.");
        int rows = (int)(x.Length / cols);
        var sum = Like(x);
        var normed = Like(x);
        var inverseRms = Tensor.Empty(x.Device, [rows]);
        var k = x.Device.Kernels.Norm;
        k.AddRmsNormForward(rows, cols, x.View, y.View, weight.View, sum.View, normed.View, inverseRms.View, eps);
        if (!Tape.ShouldRecord(Session.Of(x), x, y, weight)) return (sum, normed);
        sum.RequiresGrad = normed.RequiresGrad = true;
        // Recorded once, after both outputs exist: every consumer of either output runs its backward first.
        Session.Of(x).Tape.Record(() =>
        {
            if (normed.Grad is null)
            {
                if (sum.Grad is null) return;
                Gradients.Accumulate(x, sum.Grad);
                Gradients.Accumulate(y, sum.Grad);
                return;
            }
            k.AddRmsNormBackward(rows, cols, sum.View, weight.View, sum.Grad?.View ?? default, normed.Grad.View, inverseRms.View,
                GradientOrScratch(x), GradientOrScratch(y), weight.RequiresGrad ? Gradients.For(weight).View : default);
        });
        return (sum, normed);
    }
}
