using FlowHN.Runtime;

namespace FlowHN.Autograd;

/// <summary>
/// Two streams on which the branches of a parallel block run concurrently, with the event fork and join that
/// order them against the main stream without any host wait. The fork and join are also recorded on the tape,
/// mirrored: in the backward the join acts as the fork and the fork as the join.
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
        Second = device.CreateStream();
        forked = device.CreateEvent();
        firstDone = device.CreateEvent();
        secondDone = device.CreateEvent();
    }

    public DeviceStream First { get; }
    public DeviceStream Second { get; }

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
