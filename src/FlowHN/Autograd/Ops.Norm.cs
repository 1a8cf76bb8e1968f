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
}
