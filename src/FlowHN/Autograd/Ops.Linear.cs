using FlowHN.Tensors;

namespace FlowHN.Autograd;

public static partial class Ops
{
    /// <summary>
    /// a @ b for [M,K] x [K,N] or batched [B,M,K] x [B,K,N]; either operand may be a transposed view.
    /// Backward: dA += dC B^T, dB += A^T dC (accumulated by the GEMM's beta = 1).
    /// </summary>
    public static Tensor MatMul(Tensor a, Tensor b)
    {
        int rank = Math.Max(a.Rank, b.Rank);
        if (a.Rank != b.Rank) throw new ArgumentException($"MatMul: operands {a.ShapeString} and {b.ShapeString} must have the same rank.");
        int[] shape = rank == 3 ? [a.Shape[0], a.Dim(-2), b.Dim(-1)] : [a.Dim(-2), b.Dim(-1)];
        var c = Tensor.Empty(a.Device, shape);
        var gemm = a.Device.Kernels.Gemm;
        gemm.MatMul(a, b, c);
        return Record(c, dc =>
        {
            if (a.RequiresGrad) gemm.MatMul(dc, b.TransposeView(rank - 2, rank - 1), Gradients.For(a), 1f, 1f);
            if (b.RequiresGrad) gemm.MatMul(a.TransposeView(rank - 2, rank - 1), dc, Gradients.For(b), 1f, 1f);
        }, a, b);
    }

    /// <summary>
    /// y = x W^T for x [..., in] and W [out, in] (the PyTorch layout, so checkpoints read the same).
    /// Leading axes are flattened into rows.
    /// </summary>
    public static Tensor Linear(Tensor x, Tensor weight)
    {
        int inFeatures = weight.Dim(1), outFeatures = weight.Dim(0);
        if (x.Dim(-1) != inFeatures)
            throw new ArgumentException($"Linear: input {x.ShapeString} does not end in {inFeatures} features (weight {weight.ShapeString}).");
        int rows = (int)(x.Length / inFeatures);
        var shape = (int[])x.Shape.Clone();
        shape[^1] = outFeatures;
        var y = Tensor.Empty(x.Device, shape);
        var x2 = x.ReshapeView(rows, inFeatures);
        var y2 = y.ReshapeView(rows, outFeatures);
        var gemm = x.Device.Kernels.Gemm;
        gemm.MatMul(x2, weight.TransposeView(0, 1), y2);
        return Record(y, dy =>
        {
            var dy2 = dy.ReshapeView(rows, outFeatures);
            if (x.RequiresGrad) gemm.MatMul(dy2, weight, Gradients.For(x).ReshapeView(rows, inFeatures), 1f, 1f);
            if (weight.RequiresGrad) gemm.MatMul(dy2.TransposeView(0, 1), x2, Gradients.For(weight), 1f, 1f);
        }, x, weight);
    }
}
