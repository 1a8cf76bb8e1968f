using FlowHN.Autograd;
using FlowHN.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Training;

/// <summary>
/// A sum over the ranks of ranges of device memory, queued on a stream (NCCL's all-reduce; tests use a fake).
/// Nothing waits on the host: the sums are done when the stream's work up to here is done.
/// </summary>
public interface IDeviceCollective : IDisposable
{
    /// <summary>Queues in-place sums of each (device pointer, float count) range on <paramref name="stream"/>, in order.</summary>
    void AllReduceSum(IReadOnlyList<(IntPtr Data, long Count)> ranges, DeviceStream stream);

    /// <summary>What the collective is (for the run's header line).</summary>
    string Describe();
}

/// <summary>NCCL's all-reduce on the communicator of a process group: one ncclGroupStart/End launch per call.</summary>
public sealed class NcclCollective(NcclCommunicator communicator, NcclLoad library) : IDeviceCollective
{
    public void AllReduceSum(IReadOnlyList<(IntPtr Data, long Count)> ranges, DeviceStream stream) =>
        communicator.AllReduceSum(ranges, stream.NativeHandle);

    public string Describe() => $"NCCL {library.Describe()}";

    public void Dispose() => communicator.Dispose();
}

/// <summary>
/// The gradient all-reduce on the device (NCCL on CUDA): the buckets of the flat gradient buffer are summed in
/// place, without a copy to the host, on a communication stream of their own. Before a bucket's collective that
/// stream waits on events recorded on the streams the backward has used, once the backward has queued the last
/// work that writes the bucket's gradients: during the backward with overlap (see <see cref="GradientWatch"/>),
/// else after it, all buckets in one NCCL group. The optimizer step, queued next on the compute stream, waits on
/// the event recorded after the last collective. The host never waits: the step stays asynchronous. The order of
/// the buckets comes from the model's structure, the same on every rank and in every run.
/// </summary>
public sealed class NcclGradientReducer : IGradientReducer
{
    private readonly Session device;
    private readonly IDeviceCollective collective;
    private readonly DeviceStream communication;
    private readonly DeviceEvent gradientsFinal, reduced;
    private readonly (IntPtr Data, long Count)[] ranges;
    private readonly bool[] started;

    public NcclGradientReducer(Session device, ParameterStore store, IDeviceCollective collective, int worldSize, bool overlap = true,
        long bucketBytes = GradientBuckets.DefaultBytes)
    {
        this.device = device;
        this.collective = collective;
        WorldSize = worldSize;
        Buckets = GradientBuckets.Plan(new ParameterLayout(store.Parameters, store.Offsets, store.DecayLength, store.Length), bucketBytes);
        // The gradient buffer never moves, so the buckets' device addresses are fixed for the run.
        ranges = Buckets.Select(b => (store.Gradients.SubView(b.Offset, b.Length).LoadEffectiveAddressAsPtr(), b.Length)).ToArray();
        communication = device.Runtime.CreateStream();
        gradientsFinal = device.Runtime.CreateEvent();
        reduced = device.Runtime.CreateEvent();
        started = new bool[Buckets.Count];
        if (overlap) Watch = new GradientWatch(GradientBuckets.Parameters(store, Buckets), (b, streams) => Start([b], streams));
    }

    public GradientWatch? Watch { get; }

    public int WorldSize { get; }

    public IReadOnlyList<(long Offset, long Length)> Buckets { get; }

    public string Describe() => $"{collective.Describe()} on the device, {Buckets.Count} bucket(s) on a communication stream" +
                                (Watch is null ? ", after the backward" : ", overlapped with the backward");

    /// <summary>Queues the sums of <paramref name="buckets"/> once the work queued so far on <paramref name="streams"/> is done.</summary>
    private void Start(int[] buckets, IReadOnlyList<DeviceStream> streams)
    {
        foreach (var stream in streams)
        {
            gradientsFinal.Record(stream);
            communication.Wait(gradientsFinal); // the wait takes the event as recorded now, so it can be recorded again
        }
        collective.AllReduceSum(buckets.Select(b => ranges[b]).ToArray(), communication);
        foreach (int b in buckets) started[b] = true;
    }

    public void Reduce()
    {
        var compute = device.Runtime.CurrentStream;
        var rest = Enumerable.Range(0, Buckets.Count).Where(b => !started[b]).ToArray();
        if (rest.Length > 0) Start(rest, [compute]);
        Array.Fill(started, false);
        reduced.Record(communication);
        compute.Wait(reduced); // the clipped update reads the sums
    }

    public void Dispose()
    {
        // Queued collectives must finish before the communicator and the stream go.
        communication.Synchronize();
        collective.Dispose();
        reduced.Dispose();
        gradientsFinal.Dispose();
        communication.Dispose();
    }
}
