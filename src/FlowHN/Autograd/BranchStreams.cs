using FlowHN.Runtime;

namespace FlowHN.Autograd;

/// <summary>
/// Two streams on which the branches of a parallel block run concurrently, with the event fork and join that
/// order them against the main stream without any host wait. The fork and join are also recorded on the tape,
/// mirrored: in the backward the join acts as the fork and the fork as the join.
/// The second stream is created at the device's highest priority (CUDA; a no-op on the CPU accelerator): it is for
/// the branch of many small kernels (the SSM), whose thread blocks the GPU then dispatches as soon as SMs free up
/// between the waves of the first branch's large kernels (attention), instead of only after its last wave.
/// </summary>
public sealed class BranchStreams : IDisposable
{
    private readonly Session session;
    private readonly ComputeDevice device;
    private readonly DeviceEvent forked, firstDone, secondDone;

    public BranchStreams(Session session)
    {
        this.session = session;
        device = session.Runtime;
        First = device.CreateStream();
        Second = device.CreateStream(highPriority: true);
        forked = device.CreateEvent();
        firstDone = device.CreateEvent();
        secondDone = device.CreateEvent();
    }

    /// <summary>The stream of the branch with few large kernels (attention), at the default priority.</summary>
    public DeviceStream First { get; }

    /// <summary>The stream of the branch with many small kernels (the SSM), at the highest priority.</summary>
    public DeviceStream Second { get; }

    /// <summary>What the streams are, for the train and bench output, with the priorities the driver reports.</summary>
    public string Describe()
    {
        if (First.QueryPriority() is not int first || Second.QueryPriority() is not int second)
            return "two streams, serial on the CPU accelerator (no priorities there)";
        return $"two CUDA streams, SSM branch at priority {second}, attention at {first}; {PriorityRange(device)}";
    }

    /// <summary>The device's priority range in words; for CUDA only.</summary>
    public static string PriorityRange(ComputeDevice device) => device.StreamPriorities is { } range
        ? range.HasLevels ? $"device range {range}" : $"the device has one priority level ({range.Least}), so they are equal"
        : "no stream priorities";

    /// <summary>Both branch streams wait for the main stream's work so far.</summary>
    public void Fork()
    {
        ForkNow();
        if (session.GradEnabled) session.Tape.Record(JoinNow); // reverse order: the backward joins here
    }

    /// <summary>The main stream waits for both branch streams.</summary>
    public void Join()
    {
        JoinNow();
        if (session.GradEnabled) session.Tape.Record(ForkNow); // reverse order: the backward forks here
    }

    private void ForkNow()
    {
        var main = device.CurrentStream;
        forked.Record(main);
        First.Wait(forked);
        Second.Wait(forked);
    }

    private void JoinNow()
    {
        var main = device.CurrentStream;
        firstDone.Record(First);
        secondDone.Record(Second);
        main.Wait(firstDone);
        main.Wait(secondDone);
    }

    public void Dispose()
    {
        forked.Dispose();
        firstDone.Dispose();
        secondDone.Dispose();
        session.Kernels.Gemm.ForgetStream(First);
        session.Kernels.Gemm.ForgetStream(Second);
        First.Dispose();
        Second.Dispose();
    }
}
