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
/// Moves token rows between a sequence and a branch's subset of it. Each thread handles single elements,
/// consecutive threads consecutive features of a row, so both sides are read and written coalesced.
/// The positions are distinct (a split routes each token once), so a scatter never writes one element twice:
/// no atomics, deterministic.
/// </summary>
internal static class RoutingKernels
{
    /// <summary>part[b, i, :] = seq[b, positions[i], :], or += with <paramref name="accumulate"/> = 1.</summary>
    public static void RoutingGather(RoutingShape s, ArrayView<float> seq, ArrayView<int> positions, ArrayView<float> part,
        int accumulate)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        for (int e = first; e < s.Elements; e += stride)
        {
            long source = SequenceIndex(s, positions, e);
            part[e] = accumulate != 0 ? part[e] + seq[source] : seq[source];
        }
    }

    /// <summary>seq[b, positions[i], :] = part[b, i, :], or += with <paramref name="accumulate"/> = 1.</summary>
    public static void RoutingScatter(RoutingShape s, ArrayView<float> part, ArrayView<int> positions, ArrayView<float> seq,
        int accumulate)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        for (int e = first; e < s.Elements; e += stride)
        {
            long target = SequenceIndex(s, positions, e);
            seq[target] = accumulate != 0 ? seq[target] + part[e] : part[e];
        }
    }

    /// <summary>Where element e of part [B, count, dim] sits in seq [B, length, dim].</summary>
    private static long SequenceIndex(RoutingShape s, ArrayView<int> positions, int e)
    {
        int row = e / s.Dim;
        int j = e - row * s.Dim;
        int b = row / s.Count;
        return ((long)b * s.Length + positions[row - b * s.Count]) * s.Dim + j;
    }
}

/// <summary>Typed entry points for <see cref="RoutingKernels"/>; views are contiguous, positions int [Count].</summary>
internal sealed class RoutingLauncher : KernelFamily
{
    private readonly Action<AcceleratorStream, KernelConfig, RoutingShape, ArrayView<float>, ArrayView<int>, ArrayView<float>, int> gather;
    private readonly Action<AcceleratorStream, KernelConfig, RoutingShape, ArrayView<float>, ArrayView<int>, ArrayView<float>, int> scatter;

    public RoutingLauncher(ComputeDevice device, IScratchMemory scratch) : base(device, scratch)
    {
        gather = Load<RoutingShape, ArrayView<float>, ArrayView<int>, ArrayView<float>, int>(RoutingKernels.RoutingGather);
        scatter = Load<RoutingShape, ArrayView<float>, ArrayView<int>, ArrayView<float>, int>(RoutingKernels.RoutingScatter);
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
        kernel(Stream, Launch.Grid1D(Device, s.Elements), s, toPart ? seq : part, positions, toPart ? part : seq,
            accumulate ? 1 : 0);
    }
}
