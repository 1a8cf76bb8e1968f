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
    private readonly ComputeDevice device;
    private readonly DeviceEvent started, forwardDone, backwardDone, done;

    public StepClock(ComputeDevice device)
    {
        this.device = device;
        started = device.CreateEvent(timing: true);
        forwardDone = device.CreateEvent(timing: true);
        backwardDone = device.CreateEvent(timing: true);
        done = device.CreateEvent(timing: true);
    }

    /// <summary>The whole step: forward, loss, backward, update and zeroing.</summary>
    public double StepMs => DeviceEvent.ElapsedMilliseconds(started, done);

    /// <summary>The first micro-batch's forward and loss.</summary>
    public double ForwardMs => DeviceEvent.ElapsedMilliseconds(started, forwardDone);

    /// <summary>The first micro-batch's backward.</summary>
    public double BackwardMs => DeviceEvent.ElapsedMilliseconds(forwardDone, backwardDone);

    public void StepStarted() => started.Record(device.CurrentStream);

    public void ForwardDone(int microBatch)
    {
        if (microBatch == 0) forwardDone.Record(device.CurrentStream);
    }

    public void BackwardDone(int microBatch)
    {
        if (microBatch == 0) backwardDone.Record(device.CurrentStream);
    }

    public void StepDone() => done.Record(device.CurrentStream);

    public void Dispose()
    {
        started.Dispose();
        forwardDone.Dispose();
        backwardDone.Dispose();
        done.Dispose();
    }
}
