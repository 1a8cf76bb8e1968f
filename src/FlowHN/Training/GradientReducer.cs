using System.Runtime.InteropServices;
using FlowHN.Autograd;
using FlowHN.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Training;

/// <summary>
/// Sums the flat gradient buffer over the ranks of a data-parallel run. The training step calls it once per
/// optimizer step, after the last micro-batch's backward and before the clipped update; each rank has already
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
}

/// <summary>
/// The gradient all-reduce through MPI (the CPU accelerator's path, also correct on a GPU without NCCL): each
/// bucket is downloaded to a host buffer, summed with MPI_Allreduce and uploaded back, one bucket after another
/// in the plan's fixed order. It runs after the backward, not overlapped with it.
/// </summary>
public sealed class MpiGradientReducer : IGradientReducer
{
    private readonly ProcessGroup group;
    private readonly Session device;
    private readonly ParameterStore store;
    private readonly float[] host;

    public MpiGradientReducer(ProcessGroup group, Session device, ParameterStore store, long bucketBytes = GradientBuckets.DefaultBytes)
    {
        this.group = group;
        this.device = device;
        this.store = store;
        Buckets = GradientBuckets.Plan(new ParameterLayout(store.Parameters, store.Offsets, store.DecayLength, store.Length), bucketBytes);
        host = new float[Buckets.Count == 0 ? 0 : Buckets.Max(b => b.Length)];
    }

    public int WorldSize => group.Size;

    public IReadOnlyList<(long Offset, long Length)> Buckets { get; }

    public string Describe() => $"MPI ({group.Library}) through host memory, {Buckets.Count} bucket(s)";

    public void Dispose() { }

    public void Reduce()
    {
        var stream = device.Runtime.CurrentStream;
        foreach (var (offset, length) in Buckets)
        {
            var view = store.Gradients.SubView(offset, length);
            var buffer = host.AsSpan(0, (int)length);
            view.CopyToCPU(stream.Native, ref MemoryMarshal.GetReference(buffer), length);
            stream.Synchronize();
            group.AllReduceSum(buffer, "gradient all-reduce");
            view.CopyFromCPU(stream.Native, ref MemoryMarshal.GetReference(buffer), length);
            stream.Synchronize(); // the host buffer is reused by the next bucket
        }
        device.Runtime.Counters.Download();
        device.Runtime.Counters.Upload(4L * store.Length);
    }
}
