using FlowHN.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

/// <summary>
/// Sizes of a token routing between a full sequence [Batch, Length, Dim] and the rows one branch owns
/// [Batch, Count, Dim]; positions[i] is the sequence position of routed row i.
/// </summary>
internal readonly record struct RoutingShape
{
    public int Batch { get; init; }
    public int Length { get; init; }
    public int Count { get; init; }
    public int Dim { get; init; }
    /// <summary>Batch * Count * Dim: the routed elements, which the kernels loop over.</summary>
    public int Elements { get; init; }
}

/// <summary>
/// Moves token rows between a sequence and a branch's subset of it. Rows are walked by teams of
/// <c>lanes</c> consecutive threads (a warp on a GPU, one thread on the CPU accelerator), the grid striding over
/// rows: a team finds its row's place in the sequence once (one division and one position load per row), then
/// its threads step along the row's features together, so a warp reads and writes consecutive floats on both
/// sides (coalesced) and the inner loop is an add and two loads or stores, indexed in 32 bits from a row start.
/// The positions are distinct (a split routes each token once), so a scatter never writes one element twice:
/// no atomics, deterministic.
/// </summary>
internal static class RoutingKernels
{
    /// <summary>part[b, i, :] = seq[b, positions[i], :], or += with <paramref name="accumulate"/> = 1.</summary>
    public static void RoutingGather(RoutingShape s, ArrayView<float> seq, ArrayView<int> positions, ArrayView<float> part,
        int accumulate, int lanes)
    {
        int thread = Grid.GlobalIndex.X, teams = Grid.DimX * Group.DimX / lanes;
        int lane = thread % lanes, rows = s.Batch * s.Count, dim = s.Dim;
        if (thread >= teams * lanes) return; // a partial team would skip features
        for (int row = thread / lanes; row < rows; row += teams)
        {
            var from = seq.SubView(SequenceRowStart(s, positions, row), dim);
            var to = part.SubView((long)row * dim, dim);
            if (accumulate != 0)
                for (int j = lane; j < dim; j += lanes) to[j] += from[j];
            else
                for (int j = lane; j < dim; j += lanes) to[j] = from[j];
        }
    }

    /// <summary>seq[b, positions[i], :] = part[b, i, :], or += with <paramref name="accumulate"/> = 1.</summary>
    public static void RoutingScatter(RoutingShape s, ArrayView<float> part, ArrayView<int> positions, ArrayView<float> seq,
        int accumulate, int lanes)
    {
        int thread = Grid.GlobalIndex.X, teams = Grid.DimX * Group.DimX / lanes;
        int lane = thread % lanes, rows = s.Batch * s.Count, dim = s.Dim;
        if (thread >= teams * lanes) return;
        for (int row = thread / lanes; row < rows; row += teams)
        {
            var from = part.SubView((long)row * dim, dim);
            var to = seq.SubView(SequenceRowStart(s, positions, row), dim);
            if (accumulate != 0)
                for (int j = lane; j < dim; j += lanes) to[j] += from[j];
            else
                for (int j = lane; j < dim; j += lanes) to[j] = from[j];
        }
    }

    /// <summary>Where row (b, i) of part [B, count, dim] starts in seq [B, length, dim].</summary>
    private static long SequenceRowStart(RoutingShape s, ArrayView<int> positions, int row)
    {
        int b = row / s.Count;
        return ((long)b * s.Length + positions[row - b * s.Count]) * s.Dim;
    }
}

/// <summary>Typed entry points for <see cref="RoutingKernels"/>; views are contiguous, positions int [Count].</summary>
internal sealed class RoutingLauncher : KernelFamily
{
    private readonly Action<AcceleratorStream, KernelConfig, RoutingShape, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int> gather;
    private readonly Action<AcceleratorStream, KernelConfig, RoutingShape, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int> scatter;

    public RoutingLauncher(ComputeDevice device, IScratchMemory scratch) : base(device, scratch)
    {
        gather = Load<RoutingShape, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int>(RoutingKernels.RoutingGather);
        scatter = Load<RoutingShape, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int>(RoutingKernels.RoutingScatter);
    }

    public static RoutingShape Shape(int batch, int length, int count, int dim)
    {
        if (batch < 0 || dim < 0 || count < 0 || count > length)
            throw new ArgumentException($"Cannot route {count} of {length} tokens (batch {batch}, dim {dim}).");
        Launch.CheckedInt((long)batch * length * dim, "routed sequence");
        return new RoutingShape
        {
            Batch = batch, Length = length, Count = count, Dim = dim,
            Elements = Launch.CheckedInt((long)batch * count * dim, "routed part"),
        };
    }

    /// <summary>part = seq[:, positions, :].</summary>
    public void Gather(RoutingShape s, ArrayView<float> seq, ArrayView<int> positions, ArrayView<float> part) =>
        Run(toPart: true, s, seq, positions, part, accumulate: false);

    /// <summary>part += seq[:, positions, :] (the backward of <see cref="ScatterInto"/>).</summary>
    public void GatherAdd(RoutingShape s, ArrayView<float> seq, ArrayView<int> positions, ArrayView<float> part) =>
        Run(toPart: true, s, seq, positions, part, accumulate: true);

    /// <summary>seq[:, positions, :] += part (the backward of <see cref="Gather"/>).</summary>
    public void ScatterAdd(RoutingShape s, ArrayView<float> part, ArrayView<int> positions, ArrayView<float> seq) =>
        Run(toPart: false, s, seq, positions, part, accumulate: true);

    /// <summary>seq[:, positions, :] = part: puts a branch's rows back at their positions.</summary>
    public void ScatterInto(RoutingShape s, ArrayView<float> part, ArrayView<int> positions, ArrayView<float> seq) =>
        Run(toPart: false, s, seq, positions, part, accumulate: false);

    /// <summary>Checks the sizes, then launches; both kernels take (shape, source, positions, destination).</summary>
    private void Run(bool toPart, RoutingShape s, ArrayView<float> seq, ArrayView<int> positions, ArrayView<float> part, bool accumulate)
    {
        if (positions.Length != s.Count || seq.Length != (long)s.Batch * s.Length * s.Dim || part.Length != s.Elements)
            throw new ArgumentException(
                $"Routing [{s.Batch}, {s.Length}, {s.Dim}] <-> [{s.Batch}, {s.Count}, {s.Dim}] got {seq.Length} sequence " +
                $"elements, {part.Length} part elements and {positions.Length} positions.");
        if (s.Elements == 0) return;
        Counters.Kernel();
        var kernel = toPart ? gather : scatter;
        int lanes = LanesPerRow;
        kernel(Stream, Launch.Grid1D(Device, (long)s.Batch * s.Count * lanes), s, toPart ? seq : part, positions, toPart ? part : seq,
            accumulate ? 1 : 0, lanes);
    }

    /// <summary>
    /// Threads per row: a warp on a GPU (a row of floats is then read and written in 128-byte pieces); on the CPU
    /// accelerator the configured lanes per row (1 by default: a thread copies whole rows, no false sharing).
    /// At most a group, so every team lies inside one group.
    /// </summary>
    private int LanesPerRow
    {
        get
        {
            int group = Device.GroupSize;
            int lanes = Device.IsCuda ? Device.Accelerator.WarpSize : Device.Options.CpuLanesPerRow;
            return Math.Clamp(lanes, 1, group);
        }
    }
}
