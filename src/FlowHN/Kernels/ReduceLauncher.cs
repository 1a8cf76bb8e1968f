using FlowHN.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

internal enum ReductionKind { Sum, SumOfSquares, Max }

/// <summary>Typed entry points for <see cref="ReduceKernels"/>.</summary>
internal sealed class ReduceLauncher : KernelFamily
{
    private readonly Dictionary<ReductionKind, Action<AcceleratorStream, KernelConfig, int, ArrayView<float>, ArrayView<float>>> partials;
    private readonly Dictionary<ReductionKind, Action<AcceleratorStream, KernelConfig, int, ArrayView<float>, ArrayView<float>, int, float>> finish;
    private readonly Action<AcceleratorStream, KernelConfig, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int> columnPartials;
    private readonly Action<AcceleratorStream, KernelConfig, int, int, ArrayView<float>, ArrayView<float>> columnFinish;

    public ReduceLauncher(ComputeDevice device, IScratchMemory scratch) : base(device, scratch)
    {
        partials = new()
        {
            [ReductionKind.Sum] = Load<int, ArrayView<float>, ArrayView<float>>(ReduceKernels.SumPartials),
            [ReductionKind.SumOfSquares] = Load<int, ArrayView<float>, ArrayView<float>>(ReduceKernels.SumOfSquaresPartials),
            [ReductionKind.Max] = Load<int, ArrayView<float>, ArrayView<float>>(ReduceKernels.MaxPartials),
        };
        // Partials are already mapped (squared), so every finish only combines.
        finish = new()
        {
            [ReductionKind.Sum] = Load<int, ArrayView<float>, ArrayView<float>, int, float>(ReduceKernels.SumFinish),
            [ReductionKind.SumOfSquares] = Load<int, ArrayView<float>, ArrayView<float>, int, float>(ReduceKernels.SumFinish),
            [ReductionKind.Max] = Load<int, ArrayView<float>, ArrayView<float>, int, float>(ReduceKernels.MaxFinish),
        };
        columnPartials = Load<int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(
            ReduceKernels.ColumnSumPartials);
        columnFinish = Load<int, int, ArrayView<float>, ArrayView<float>>(ReduceKernels.ColumnSumFinish);
    }

    /// <summary>
    /// result[index] = scale * reduce(x), for x of any length. Stays on the device: nothing is read back.
    /// Up to <paramref name="chunkElements"/> elements take two launches (per-group partials, then one group
    /// combines them). A longer x is reduced chunk by chunk into one total per chunk, and one group combines
    /// the totals in chunk order: a fixed order, so results are bitwise reproducible at any length.
    /// </summary>
    public void Reduce(ReductionKind kind, ArrayView<float> x, ArrayView<float> result, int index = 0, float scale = 1f,
        long chunkElements = Launch.MaxElements)
    {
        if (x.Length <= chunkElements)
        {
            ReduceChunk(kind, x, result, index, scale);
            return;
        }
        var chunks = Launch.Chunks(x.Length, chunkElements).ToList();
        using var totals = Scratch(chunks.Count);
        for (int c = 0; c < chunks.Count; c++) ReduceChunk(kind, x.SubView(chunks[c].Start, chunks[c].Count), totals.View, c, 1f);
        Finish(kind, chunks.Count, totals.View, result, index, scale);
    }

    private void ReduceChunk(ReductionKind kind, ArrayView<float> x, ArrayView<float> result, int index, float scale)
    {
        int n = Launch.CheckedInt(x.Length, "reduction chunk");
        var config = Launch.Grid1D(Device, n, Device.GroupSize);
        using var scratch = Scratch(config.GridDim.X);
        partials[kind](Stream, config, n, x, scratch.View);
        Counters.Kernel();
        Finish(kind, config.GridDim.X, scratch.View, result, index, scale);
    }

    /// <summary>result[index] = scale * combination of count partials (already mapped), by one group.</summary>
    private void Finish(ReductionKind kind, int count, ArrayView<float> partialValues, ArrayView<float> result, int index, float scale)
    {
        int group = Device.GroupSize;
        finish[kind](Stream, Launch.Config(new Index3D(1, 1, 1), new Index3D(group, 1, 1), group),
            count, partialValues, result, index, scale);
        Counters.Kernel();
    }

    /// <summary>
    /// y[j] += sum over rows of a[r, j], or of a[r, j] * b[r, j] * rowScale[r] when b and rowScale are given.
    /// </summary>
    public void ColumnSum(int rows, int cols, ArrayView<float> a, ArrayView<float> y,
        ArrayView<float> b = default, ArrayView<float> rowScale = default)
    {
        bool weighted = b.IsValid;
        // Chunks go in grid.y, which CUDA caps at 65535.
        int rowsPerChunk = Device.IsCuda ? Math.Max(64, (rows + 65534) / 65535) : Math.Max(64, rows / Device.Accelerator.NumMultiprocessors + 1);
        int chunks = Math.Max(1, (rows + rowsPerChunk - 1) / rowsPerChunk);
        using var partial = Scratch((long)chunks * cols);
        int group = Device.GroupSize;
        var grid = new Index3D((cols + group - 1) / group, chunks, 1);
        columnPartials(Stream, new KernelConfig(grid, new Index3D(group, 1, 1)), rows, cols, rowsPerChunk, a,
            weighted ? b : a, weighted ? rowScale : a, partial.View, weighted ? 1 : 0);
        columnFinish(Stream, Launch.Grid1D(Device, cols), chunks, cols, partial.View, y);
        Counters.Kernel();
        Counters.Kernel();
    }
}
