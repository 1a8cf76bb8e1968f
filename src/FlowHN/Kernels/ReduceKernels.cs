using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Algorithms;

namespace FlowHN.Kernels;

/// <summary>
/// Deterministic reductions: every group reduces its grid-stride share into one partial, then a single group
/// reduces the partials in a fixed order. No atomics, so results are bitwise reproducible.
/// </summary>
internal static class ReduceKernels
{
    // One non-generic entry point per reduction: a profiler names a kernel after its method alone, so the generic
    // bodies loaded directly would all show as Kernel_Partials and Kernel_Finish.
    public static void SumPartials(int n, ArrayView<float> x, ArrayView<float> partials) => Partials<SumReduction>(n, x, partials);

    public static void SumOfSquaresPartials(int n, ArrayView<float> x, ArrayView<float> partials) =>
        Partials<SumOfSquaresReduction>(n, x, partials);

    public static void MaxPartials(int n, ArrayView<float> x, ArrayView<float> partials) => Partials<MaxReduction>(n, x, partials);

    public static void SumFinish(int count, ArrayView<float> partials, ArrayView<float> result, int index, float scale) =>
        Finish<SumReduction>(count, partials, result, index, scale);

    public static void MaxFinish(int count, ArrayView<float> partials, ArrayView<float> result, int index, float scale) =>
        Finish<MaxReduction>(count, partials, result, index, scale);

    /// <summary>partials[group] = reduction of Map(x[i]) over the group's share.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Partials<TReduction>(int n, ArrayView<float> x, ArrayView<float> partials)
        where TReduction : struct, IReduction
    {
        var scratch = SharedMemory.GetDynamic<float>();
        var op = default(TReduction);
        float acc = op.Identity;
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        for (int i = first; i < n; i += stride) acc = op.Combine(acc, op.Map(x[i]));
        float total = GroupReduce.Reduce<TReduction>(acc, scratch, Group.DimX);
        if (Group.IdxX == 0) partials[Grid.IdxX] = total;
    }

    /// <summary>result[index] = scale * combination of the partials (run with a single group).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish<TReduction>(int count, ArrayView<float> partials, ArrayView<float> result, int index, float scale)
        where TReduction : struct, IReduction
    {
        int lane = Group.IdxX, lanes = Group.DimX;
        var scratch = SharedMemory.GetDynamic<float>();
        var op = default(TReduction);
        float acc = op.Identity;
        for (int i = lane; i < count; i += lanes) acc = op.Combine(acc, partials[i]);
        float total = GroupReduce.Reduce<TReduction>(acc, scratch, Group.DimX);
        if (Group.IdxX == 0) result[index] = total * scale;
    }

    /// <summary>
    /// partial[chunk, j] = sum over the chunk's rows r of a[r, j] (times b[r, j] * rowScale[r] when
    /// <paramref name="weighted"/>): the first stage of a column sum, e.g. a bias or norm-weight gradient.
    /// Grid: x over columns, y over row chunks.
    /// </summary>
    public static void ColumnSumPartials(int rows, int cols, int rowsPerChunk, ArrayView<float> a, ArrayView<float> b,
        ArrayView<float> rowScale, ArrayView<float> partial, int weighted)
    {
        int j = Grid.GlobalIndex.X;
        int chunk = Grid.IdxY;
        if (j >= cols) return;
        int start = chunk * rowsPerChunk;
        int end = XMath.Min(rows, start + rowsPerChunk);
        float acc = 0f;
        for (int r = start; r < end; r++)
        {
            long idx = (long)r * cols + j;
            acc += weighted != 0 ? a[idx] * b[idx] * rowScale[r] : a[idx];
        }
        partial[(long)chunk * cols + j] = acc;
    }

    /// <summary>y[j] += sum over chunks of partial[chunk, j] (second stage of a column sum).</summary>
    public static void ColumnSumFinish(int chunks, int cols, ArrayView<float> partial, ArrayView<float> y)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        for (int j = first; j < cols; j += stride)
        {
            float acc = 0f;
            for (int c = 0; c < chunks; c++) acc += partial[(long)c * cols + j];
            y[j] += acc;
        }
    }
}
