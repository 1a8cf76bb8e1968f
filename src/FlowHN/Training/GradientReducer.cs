using FlowHN.Autograd;
using FlowHN.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Training;

/// <summary>
/// Sums the flat gradient buffer over the ranks of a data-parallel run. The training step calls it once per
/// optimizer step, after the last micro-batch's backward and before the clipped update (buckets may have started
/// during that backward, see <see cref="Watch"/>); each rank has already
/// scaled its loss by 1 / (accumulation x <see cref="WorldSize"/>), so the sum is the global mean gradient and the
/// norm the update clips on is the global norm, with no extra pass over the gradients.
/// </summary>
public interface IGradientReducer : IDisposable
{
    /// <summary>The number of ranks whose gradients are summed.</summary>
    int WorldSize { get; }

    /// <summary>Sums the gradients over all ranks, in place; every rank ends with the same values.</summary>
    void Reduce();

    /// <summary>How the gradients are summed (for the run's header line).</summary>
    string Describe();

    /// <summary>
    /// Put on the tape for the last micro-batch: starts each bucket's sum as soon as the backward has finished its
    /// gradients (overlap). Null: every bucket is summed in <see cref="Reduce"/>, after the backward.
    /// </summary>
    GradientWatch? Watch { get; }
}

/// <summary>
/// Contiguous ranges of the flat gradient buffer reduced one collective each, as PyTorch DDP's buckets
/// (25 MiB by default). Boundaries fall on parameter offsets and buckets are planned from the end of the layout
/// backwards: the backward finishes the last layers' gradients first, so with a reducer that overlaps the
/// backward the first bucket is ready first. The order is fixed by the layout, so results are the same every run.
/// </summary>
public static class GradientBuckets
{
    public const long DefaultBytes = 25L << 20;

    /// <summary>The buckets (offset, length) in the order they are reduced; they cover [0, store length) exactly.</summary>
    public static IReadOnlyList<(long Offset, long Length)> Plan(ParameterLayout layout, long bucketBytes = DefaultBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bucketBytes, sizeof(float));
        long bucketElements = bucketBytes / sizeof(float);
        var buckets = new List<(long, long)>();
        long end = layout.Length;
        long start = end;
        for (int i = layout.Ordered.Count - 1; i >= 0; i--)
        {
            long offset = layout.Offsets[layout.Ordered[i]];
            // Close the bucket before a parameter that would overflow it (a parameter larger than a bucket gets one of its own).
            if (end - offset > bucketElements && start < end)
            {
                buckets.Add((start, end - start));
                end = start;
            }
            start = offset;
        }
        if (start < end) buckets.Add((start, end - start));
        return buckets;
    }

    /// <summary>The parameters whose gradients lie in each bucket.</summary>
    public static IReadOnlyList<IReadOnlyList<Parameter>> Parameters(ParameterStore store, IReadOnlyList<(long Offset, long Length)> buckets) =>
        buckets.Select(b => (IReadOnlyList<Parameter>)store.Offsets
            .Where(p => p.Value >= b.Offset && p.Value < b.Offset + b.Length).Select(p => p.Key).ToList()).ToList();
}

/// <summary>
/// The gradient all-reduce through MPI (the CPU accelerator's path, also correct on a GPU without NCCL): each
/// bucket is downloaded to host memory, summed with MPI_Iallreduce and uploaded back. With overlap, a bucket is
/// downloaded as soon as the backward has finished its gradients and summed on a worker thread while the
/// backward goes on (the buckets one after another, in the order they became final, which every rank shares);
/// the uploads wait for the end of the backward. Without, the buckets go one after another after the backward.
/// The sums are the same either way: the same MPI call on the same values.
/// </summary>
public sealed class MpiGradientReducer : IGradientReducer
{
    private readonly ProcessGroup group;
    private readonly Session device;
    private readonly ParameterStore store;
    private readonly float[] host; // the whole buffer with overlap (buckets in flight together), else one bucket
    private readonly bool[] started;
    private Task reducing = Task.CompletedTask; // the worker's queue of bucket sums

    public MpiGradientReducer(ProcessGroup group, Session device, ParameterStore store, bool overlap = true,
        long bucketBytes = GradientBuckets.DefaultBytes)
    {
        this.group = group;
        this.device = device;
        this.store = store;
        Buckets = GradientBuckets.Plan(new ParameterLayout(store.Parameters, store.Offsets, store.DecayLength, store.Length), bucketBytes);
        overlap &= group.AnyThreadMayCall; // the worker thread calls MPI
        host = new float[overlap ? store.Length : Buckets.Count == 0 ? 0 : Buckets.Max(b => b.Length)];
        started = new bool[Buckets.Count];
        if (overlap) Watch = new GradientWatch(GradientBuckets.Parameters(store, Buckets), Start);
    }

    public int WorldSize => group.Size;

    public IReadOnlyList<(long Offset, long Length)> Buckets { get; }

    public GradientWatch? Watch { get; }

    public string Describe() => $"MPI ({group.Library}) through host memory, {Buckets.Count} bucket(s)" +
                                (Watch is null ? ", after the backward" : ", overlapped with the backward");

    // Reduce waits for every bucket, so only a step that failed leaves one in flight; the job is being ended then
    // (MPI_Abort), and waiting for a sum that may never come would only delay that.
    public void Dispose() { }

    /// <summary>Bucket <paramref name="bucket"/> is final once <paramref name="streams"/>' work is done: download it, sum it on the worker.</summary>
    private void Start(int bucket, IReadOnlyList<DeviceStream> streams)
    {
        foreach (var queued in streams) queued.Synchronize();
        var (offset, length) = Buckets[bucket];
        var stream = device.Runtime.CurrentStream;
        // Through a span, which ILGPU pins for the copy: the host array is managed memory the GC may move.
        store.Gradients.SubView(offset, length).CopyToCPU(stream.Native, host.AsSpan((int)offset, (int)length));
        stream.Synchronize();
        started[bucket] = true;
        var previous = reducing;
        reducing = previous.ContinueWith(_ =>
        {
            previous.GetAwaiter().GetResult(); // a failed bucket fails the rest
            group.AllReduceSum(host.AsSpan((int)offset, (int)length), "gradient all-reduce");
        }, TaskScheduler.Default);
    }

    public void Reduce()
    {
        var stream = device.Runtime.CurrentStream;
        if (Watch is not null)
        {
            for (int b = 0; b < Buckets.Count; b++)
                if (!started[b]) Start(b, [stream]);
            Array.Fill(started, false);
            var done = reducing;
            reducing = Task.CompletedTask;
            done.GetAwaiter().GetResult(); // a timeout on the worker is this step's error
            foreach (var (offset, length) in Buckets)
                store.Gradients.SubView(offset, length).CopyFromCPU(stream.Native, (ReadOnlySpan<float>)host.AsSpan((int)offset, (int)length));
            stream.Synchronize(); // the host buffer is written again in the next step
        }
        else
            foreach (var (offset, length) in Buckets)
            {
                var view = store.Gradients.SubView(offset, length);
                var buffer = host.AsSpan(0, (int)length);
                view.CopyToCPU(stream.Native, buffer);
                stream.Synchronize();
                group.AllReduceSum(buffer, "gradient all-reduce");
                view.CopyFromCPU(stream.Native, (ReadOnlySpan<float>)buffer);
                stream.Synchronize(); // the host buffer is reused by the next bucket
            }
        device.Runtime.Counters.Download();
        device.Runtime.Counters.Upload(4L * store.Length);
    }
}
