using FlowHN.Kernels;
using FlowHN.Tensors;

namespace FlowHN.Autograd;

public static partial class Ops
{
    /// <summary>
    /// The rows of x [B, L, d] at int positions [n] (distinct, e.g. one branch's tokens from a split plan):
    /// returns [B, n, d] with y[b, i, :] = x[b, positions[i], :]. Its backward adds dy back at those positions.
    /// </summary>
    public static Tensor GatherTokens(Tensor x, Tensor positions)
    {
        if (x.Rank != 3) throw new ArgumentException($"GatherTokens: x {x.ShapeString} must be [batch, length, dim].");
        var s = RoutingLauncher.Shape(x.Dim(0), x.Dim(1), PositionCount(positions, "GatherTokens"), x.Dim(2));
        var kernels = x.Device.Kernels.Routing;
        var y = Tensor.Empty(x.Device, [s.Batch, s.Count, s.Dim]);
        kernels.Gather(s, x.View, positions.IntView, y.View);
        return Record(y, dy => kernels.ScatterAdd(s, dy.View, positions.IntView, Gradients.For(x).View), x);
    }

    /// <summary>
    /// Puts two branches' outputs back at their tokens' positions: first [B, n1, d] at firstPositions [n1] and
    /// second [B, n2, d] at secondPositions [n2], which together must hold every position of 0..seqLen-1 exactly
    /// once (as a split plan's do). Returns a new [B, seqLen, d]; the backward gathers each part's rows.
    /// </summary>
    public static Tensor MergeTokens(Tensor first, Tensor firstPositions, Tensor second, Tensor secondPositions, int seqLen)
    {
        if (first.Rank != 3 || second.Rank != 3 || first.Dim(0) != second.Dim(0) || first.Dim(2) != second.Dim(2))
            throw new ArgumentException(
                $"MergeTokens: parts {first.ShapeString} and {second.ShapeString} must be [batch, tokens, dim] with the same batch and dim.");
        if (first.Dim(1) + second.Dim(1) != seqLen)
            throw new ArgumentException($"MergeTokens: {first.Dim(1)} + {second.Dim(1)} tokens do not fill a sequence of {seqLen}.");
        int batch = first.Dim(0), dim = first.Dim(2);
        if (PositionCount(firstPositions, "MergeTokens") != first.Dim(1) || PositionCount(secondPositions, "MergeTokens") != second.Dim(1))
            throw new ArgumentException(
                $"MergeTokens: positions {firstPositions} and {secondPositions} do not match parts {first.ShapeString} and {second.ShapeString}.");
        var s1 = RoutingLauncher.Shape(batch, seqLen, first.Dim(1), dim);
        var s2 = RoutingLauncher.Shape(batch, seqLen, second.Dim(1), dim);
        var kernels = first.Device.Kernels.Routing;
        // No zero fill: the two position lists cover the sequence, so the scatters write every element.
        var merged = Tensor.Empty(first.Device, [batch, seqLen, dim]);
        kernels.ScatterInto(s1, first.View, firstPositions.IntView, merged.View);
        kernels.ScatterInto(s2, second.View, secondPositions.IntView, merged.View);
        return Record(merged, dm =>
        {
            if (first.RequiresGrad) kernels.GatherAdd(s1, dm.View, firstPositions.IntView, Gradients.For(first).View);
            if (second.RequiresGrad) kernels.GatherAdd(s2, dm.View, secondPositions.IntView, Gradients.For(second).View);
        }, first, second);
    }

    /// <summary>The length of an int position list (the launcher checks it against the sequence).</summary>
    private static int PositionCount(Tensor positions, string op)
    {
        if (positions.DType != DType.Int32 || positions.Rank != 1)
            throw new ArgumentException($"{op}: positions must be a one-dimensional int tensor, got {positions}.");
        return (int)positions.Length;
    }
}
