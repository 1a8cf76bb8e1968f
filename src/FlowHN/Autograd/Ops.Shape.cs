using FlowHN.Tensors;

namespace FlowHN.Autograd;

public static partial class Ops
{
    /// <summary>Same elements, new shape; shares memory with x (x must be contiguous).</summary>
    public static Tensor Reshape(Tensor x, params int[] shape)
    {
        var y = x.ReshapeView(shape);
        return Record(y, dy => Gradients.Accumulate(x, dy), x);
    }

    /// <summary>Swaps two axes into a new contiguous tensor.</summary>
    public static Tensor Transpose(Tensor x, int axisA, int axisB)
    {
        var y = Tensor.Empty(x.Device, x.TransposeView(axisA, axisB).Shape);
        x.Device.Kernels.Elementwise.StridedCopy(x.TransposeView(axisA, axisB), y);
        return Record(y, dy => AccumulateTransposed(x, dy, axisA, axisB), x);
    }

    /// <summary>Swaps two axes without copying (a strided view, e.g. for a matrix product operand).</summary>
    public static Tensor TransposeView(Tensor x, int axisA, int axisB)
    {
        var y = x.TransposeView(axisA, axisB);
        return Record(y, dy => AccumulateTransposed(x, dy, axisA, axisB), x);
    }

    /// <summary>x.Grad += dy with the two axes swapped back (a swap is its own inverse).</summary>
    private static void AccumulateTransposed(Tensor x, Tensor dy, int axisA, int axisB)
    {
        var back = Tensor.Empty(x.Device, x.Shape);
        x.Device.Kernels.Elementwise.StridedCopy(dy.TransposeView(axisA, axisB), back);
        Gradients.Accumulate(x, back);
    }

    /// <summary>Elements start .. start+length of the last axis, as a new contiguous tensor.</summary>
    public static Tensor SliceLast(Tensor x, int start, int length)
    {
        var view = x.SliceLastView(start, length);
        var y = Tensor.Empty(x.Device, view.Shape);
        x.Device.Kernels.Elementwise.StridedCopy(view, y);
        return Record(y, dy =>
        {
            var dx = Gradients.For(x);
            x.Device.Kernels.Elementwise.StridedAccumulate(dy, dx.SliceLastView(start, length));
        }, x);
    }
}
