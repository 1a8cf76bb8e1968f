using FlowHN.Autograd;
using FlowHN.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Training;

/// <summary>
/// ZeRO stage 1: the contiguous range [<see cref="Offset"/>, <see cref="Offset"/> + <see cref="Length"/>) of the
/// flat parameter buffer (<see cref="Total"/> elements) whose AdamW moments rank <see cref="Rank"/> keeps and updates. The ranges are balanced
/// (lengths differ by at most one) and fixed by the world size alone, so a checkpoint never depends on them.
/// </summary>
public sealed record ParameterShard(int Rank, int Ranks, long Total, long Offset, long Length)
{
    /// <summary>Rank <paramref name="rank"/>'s range of a buffer of <paramref name="total"/> elements split over <paramref name="ranks"/>.</summary>
    public static ParameterShard Balanced(long total, int ranks, int rank)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ranks, 1);
        if (rank < 0 || rank >= ranks) throw new ArgumentOutOfRangeException(nameof(rank));
        long size = total / ranks, extra = total % ranks; // the first `extra` ranks take one element more
        long offset = rank * size + Math.Min(rank, extra);
        return new ParameterShard(rank, ranks, total, offset, size + (rank < extra ? 1 : 0));
    }

    /// <summary>Every rank's length and offset, in rank order, as MPI's counts and displacements.</summary>
    public (int[] Counts, int[] Displacements) Layout()
    {
        if (Total > int.MaxValue)
            throw new UserException($"--zero 1 over MPI shards buffers of up to {int.MaxValue:N0} elements (MPI counts them in int); " +
                                    $"this model has {Total:N0} parameters. Run without --zero.");
        var counts = new int[Ranks];
        var displacements = new int[Ranks];
        for (int r = 0; r < Ranks; r++)
        {
            var s = Balanced(Total, Ranks, r);
            counts[r] = (int)s.Length;
            displacements[r] = (int)s.Offset;
        }
        return (counts, displacements);
    }

    /// <summary>The part of [<paramref name="start"/>, <paramref name="start"/> + <paramref name="length"/>) inside this shard, in shard coordinates.</summary>
    public (long Start, long Length) Overlap(long start, long length)
    {
        long from = Math.Max(start, Offset), to = Math.Min(start + length, Offset + Length);
        return to > from ? (from - Offset, to - from) : (0, 0);
    }
}

/// <summary>What a sharded AdamW step needs from the other ranks (ZeRO-1).</summary>
public interface IShardSync
{
    /// <summary>Sums the one value at <paramref name="value"/> (this rank's sum of squared gradients) over the ranks, in place.</summary>
    void SumOverRanks(ArrayView<float> value);

    /// <summary>After each rank updated its shard of the weights: every rank gets every shard.</summary>
    void GatherWeights();
}

/// <summary>
/// ZeRO-1 through MPI in host memory: the gradients are reduce-scattered (each rank receives the sum of its own
/// shard only), the sharded AdamW updates that shard, and the weights are all-gathered. The same sums as the
/// all-reduce of <see cref="MpiGradientReducer"/>, in one call after the backward (no overlap).
/// </summary>
public sealed class MpiZeroReducer : IGradientReducer, IShardSync
{
    private readonly ProcessGroup group;
    private readonly Session device;
    private readonly ParameterStore store;
    private readonly float[] host;  // the whole flat buffer: gradients before the reduce-scatter, weights in the all-gather
    private readonly float[] shard; // this rank's summed gradients
    private readonly int[] counts, displacements;

    public MpiZeroReducer(ProcessGroup group, Session device, ParameterStore store, ParameterShard mine)
    {
        this.group = group;
        this.device = device;
        this.store = store;
        Shard = mine;
        (counts, displacements) = mine.Layout();
        host = new float[store.Length];
        shard = new float[mine.Length];
    }

    public ParameterShard Shard { get; }

    public int WorldSize => group.Size;

    public GradientWatch? Watch => null;

    public string Describe() => $"ZeRO-1 over MPI ({group.Library}) through host memory: gradients reduce-scattered after the backward, " +
                                $"this rank updates parameters [{Shard.Offset:N0}, {Shard.Offset + Shard.Length:N0}) of {store.Length:N0}, weights all-gathered";

    public void Dispose() { }

    public void Reduce()
    {
        var stream = device.Runtime.CurrentStream;
        store.Gradients.CopyToCPU(stream.Native, host.AsSpan()); // span overloads pin the host array for the copy
        stream.Synchronize();
        group.ReduceScatterSum(host, shard, counts, "gradient reduce-scatter");
        store.Gradients.SubView(Shard.Offset, Shard.Length).CopyFromCPU(stream.Native, (ReadOnlySpan<float>)shard);
        stream.Synchronize();
        device.Runtime.Counters.Download();
        device.Runtime.Counters.Upload(4L * shard.Length);
    }

    public void SumOverRanks(ArrayView<float> value)
    {
        var stream = device.Runtime.CurrentStream;
        var one = new float[1];
        value.SubView(0, 1).CopyToCPU(stream.Native, one.AsSpan());
        stream.Synchronize();
        group.AllReduceSum(one, "gradient norm");
        value.SubView(0, 1).CopyFromCPU(stream.Native, (ReadOnlySpan<float>)one);
        stream.Synchronize();
    }

    public void GatherWeights()
    {
        var stream = device.Runtime.CurrentStream;
        store.Weights.SubView(Shard.Offset, Shard.Length).CopyToCPU(stream.Native, host.AsSpan((int)Shard.Offset, (int)Shard.Length));
        stream.Synchronize();
        group.AllGather(host, counts, displacements, "weight all-gather");
        store.Weights.CopyFromCPU(stream.Native, (ReadOnlySpan<float>)host);
        stream.Synchronize();
        device.Runtime.Counters.Download();
        device.Runtime.Counters.Upload(4L * host.Length);
    }

    /// <summary>
    /// The whole moments on rank 0 for a checkpoint in the single-process format (null on the other ranks); every
    /// rank must call it.
    /// </summary>
    public (float[] M, float[] V)? GatherMoments(AdamW optimizer)
    {
        var (m, v) = optimizer.ShardMoments();
        float[]? allM = group.IsRoot ? new float[store.Length] : null, allV = group.IsRoot ? new float[store.Length] : null;
        group.Gather(m, allM ?? [], counts, displacements, what: "optimizer moments gather");
        group.Gather(v, allV ?? [], counts, displacements, what: "optimizer moments gather");
        return group.IsRoot ? (allM!, allV!) : null;
    }
}
