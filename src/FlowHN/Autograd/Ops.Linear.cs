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
    public static Tensor Linear(Tensor x, Tensor weight) => Linear(x, weight, recordBackward: true);

    private static Tensor Linear(Tensor x, Tensor weight, bool recordBackward)
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
        if (!recordBackward) return y;
        return Record(y, dy =>
        {
            var dy2 = dy.ReshapeView(rows, outFeatures);
            if (x.RequiresGrad) gemm.MatMul(dy2, weight, Gradients.For(x).ReshapeView(rows, inFeatures), 1f, 1f);
            if (weight.RequiresGrad) gemm.MatMul(dy2.TransposeView(0, 1), x2, Gradients.For(weight), 1f, 1f);
        }, x, weight);
    }

    /// <summary>
    /// y = x W^T for a weight whose rows past <paramref name="outputs"/> are padding (an LM head with its
    /// vocabulary rounded up, see <see cref="Nn.VocabularyPadding"/>). The forward product runs over every row of W,
    /// so the output rows are W.Dim(0) floats apart (aligned); the result is the view of the first
    /// <paramref name="outputs"/> columns, so nothing downstream sees a padding column. The backward products run
    /// over the real rows only (the output gradient read in place, with the same row stride): the padding rows of
    /// W never get a gradient. Padding FLOPs are issued but not counted as model FLOPs (see LaunchCounters).
    /// </summary>
    public static Tensor Linear(Tensor x, Tensor weight, int outputs)
    {
        int inFeatures = weight.Dim(1), padded = weight.Dim(0);
        if (outputs == padded) return Linear(x, weight);
        if (outputs <= 0 || outputs > padded)
            throw new ArgumentException($"Linear: {outputs} outputs of a weight with {padded} rows.");
        var full = Linear(x, weight, recordBackward: false);
        x.Device.Runtime.Counters.PaddingMatmul(full.Length / padded, padded - outputs, inFeatures);
        var y = full.SliceLastView(0, outputs);
        int rows = (int)(x.Length / inFeatures);
        var x2 = x.ReshapeView(rows, inFeatures);
        var gemm = x.Device.Kernels.Gemm;
        return Record(y, dy =>
        {
            var dy2 = dy.RowsView(); // [rows, outputs]: y itself (its gradient written over it) or a contiguous gradient
            if (x.RequiresGrad) gemm.MatMul(dy2, weight.SliceView(0, outputs), Gradients.For(x).ReshapeView(rows, inFeatures), 1f, 1f);
            if (weight.RequiresGrad) gemm.MatMul(dy2.TransposeView(0, 1), x2, Gradients.For(weight).SliceView(0, outputs), 1f, 1f);
        }, x, weight);
    }
}
