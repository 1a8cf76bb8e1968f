using FlowHN.Kernels;

namespace FlowHN.Tensors;

/// <summary>Launches on tensors: the views, shapes and strides the launchers take, worked out from tensors.</summary>
internal static class TensorLaunches
{
    /// <summary>Copies any view of rank up to 4 into a contiguous tensor of the same shape.</summary>
    public static void StridedCopy(this ElementwiseLauncher k, Tensor x, Tensor y) =>
        k.StridedCopy(x.StridedView, StridedLayout.From(x.Shape, x.Strides), y.View);

    /// <summary>y (any view of rank up to 4) += x (contiguous, same shape).</summary>
    public static void StridedAccumulate(this ElementwiseLauncher k, Tensor x, Tensor y) =>
        k.StridedAccumulate(x.View, y.StridedView, StridedLayout.From(y.Shape, y.Strides));

    /// <summary>
    /// c = alpha * a @ b + beta * c. Shapes [M,K] x [K,N] -> [M,N], or batched [B,M,K] x [B,K,N] -> [B,M,N]
    /// (a rank-2 operand is shared by every batch). Transposed views are fine; c must be contiguous.
    /// </summary>
    public static void MatMul(this GemmLauncher gemm, Tensor a, Tensor b, Tensor c, float alpha = 1f, float beta = 0f)
    {
        var s = DescribeMatMul(a, b, c, alpha, beta, out int batch);
        gemm.MatMul(a.StridedView, b.StridedView, c.View, s, batch);
    }

    internal static GemmShape DescribeMatMul(Tensor a, Tensor b, Tensor c, float alpha, float beta, out int batch)
    {
        if (!c.IsContiguous) throw new ArgumentException("MatMul output must be contiguous.");
        if (a.Rank is < 2 or > 3 || b.Rank is < 2 or > 3 || c.Rank != Math.Max(a.Rank, b.Rank))
            throw new ArgumentException($"MatMul shapes {a.ShapeString} x {b.ShapeString} -> {c.ShapeString} not supported.");
        batch = c.Rank == 3 ? c.Shape[0] : 1;
        int m = a.Dim(-2), k = a.Dim(-1), n = b.Dim(-1);
        if (b.Dim(-2) != k || c.Dim(-2) != m || c.Dim(-1) != n || (a.Rank == 3 && a.Shape[0] != batch) ||
            (b.Rank == 3 && b.Shape[0] != batch))
            throw new ArgumentException($"MatMul shapes {a.ShapeString} x {b.ShapeString} -> {c.ShapeString} do not match.");
        return new GemmShape
        {
            M = m, N = n, K = k,
            ARow = (int)a.Strides[^2], ACol = (int)a.Strides[^1],
            BRow = (int)b.Strides[^2], BCol = (int)b.Strides[^1],
            CRow = (int)c.Strides[^2],
            ABatch = a.Rank == 3 ? a.Strides[0] : 0,
            BBatch = b.Rank == 3 ? b.Strides[0] : 0,
            CBatch = c.Rank == 3 ? c.Strides[0] : 0,
            Alpha = alpha, Beta = beta,
        };
    }
}
