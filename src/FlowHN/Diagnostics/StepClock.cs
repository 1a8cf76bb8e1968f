using FlowHN.Autograd;
using FlowHN.Runtime;
using FlowHN.Training;

namespace FlowHN.Diagnostics;

/// <summary>
/// Device events at the points of a <see cref="TrainingStep"/>: its start (after the first micro-batch's tokens are
/// uploaded, so host work and the upload are not timed), the end of the first micro-batch's forward and backward,
/// and the end of the step (update and zeroing done). The times wait for the events of the last step.
/// </summary>
public sealed class StepClock : IStepObserver, IDisposable
{
    private readonly Session device;
    private readonly DeviceEvent started, forwardDone, backwardDone, done;

    public StepClock(Session device)
    {
        this.device = device;
        started = device.Runtime.CreateEvent(timing: true);
        forwardDone = device.Runtime.CreateEvent(timing: true);
        backwardDone = device.Runtime.CreateEvent(timing: true);
        done = device.Runtime.CreateEvent(timing: true);
    }

    /// <summary>The whole step: forward, loss, backward, update and zeroing.</summary>
    public double StepMs => DeviceEvent.ElapsedMilliseconds(started, done);

    /// <summary>The first micro-batch's forward and loss.</summary>
    public double ForwardMs => DeviceEvent.ElapsedMilliseconds(started, forwardDone);

    /// <summary>The first micro-batch's backward.</summary>
    public double BackwardMs => DeviceEvent.ElapsedMilliseconds(forwardDone, backwardDone);

    public void StepStarted() => started.Record(device.Runtime.CurrentStream);

    public void ForwardDone(int microBatch)
    {
        if (microBatch == 0) forwardDone.Record(device.Runtime.CurrentStream);
    }

    public void BackwardDone(int microBatch)
    {
        if (microBatch == 0) backwardDone.Record(device.Runtime.CurrentStream);
    }

    public void StepDone() => done.Record(device.Runtime.CurrentStream);

    public void Dispose()
    {
        started.Dispose();
        forwardDone.Dispose();
        backwardDone.Dispose();
        done.Dispose();
    }
}
