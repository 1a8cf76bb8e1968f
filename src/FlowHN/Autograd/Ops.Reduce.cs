using FlowHN.Kernels;
using FlowHN.Tensors;

namespace FlowHN.Autograd;

public static partial class Ops
{
    private static Tensor Scalar(Tensor like) => Tensor.Empty(like.Device, [1]);

    /// <summary>Sum of all elements, as a one-element tensor (stays on the device).</summary>
    public static Tensor Sum(Tensor x) => SumScaled(x, 1f);

    public static Tensor Mean(Tensor x) => SumScaled(x, 1f / Math.Max(1, x.Length));

    private static Tensor SumScaled(Tensor x, float scale)
    {
        var y = Scalar(x);
        x.Device.Kernels.Reduce.Reduce(ReductionKind.Sum, x.View, y.View, 0, scale);
        // d(scale * sum)/dx = scale everywhere.
        return Record(y, dy => x.Device.Kernels.Elementwise.AccumulateScalar(dy.View, Gradients.For(x).View, scale), x);
    }
}
