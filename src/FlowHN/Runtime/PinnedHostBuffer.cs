using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Runtime;

/// <summary>
/// A page-locked host buffer of ints that uploads to the device without making the host wait: the copy is queued
/// on a stream (on a GPU the DMA engine reads the locked pages while kernels run) and an event marks its end.
/// The host must not write the buffer again until <see cref="WaitUntilCopied"/>; a caller that keeps two of them
/// fills one while the other's copy may still be in flight. On the CPU accelerator the same calls run (the copy
/// is a plain memory copy that is done when it returns).
/// </summary>
public sealed class PinnedHostBuffer : IDisposable
{
    private readonly ComputeDevice device;
    private readonly PageLockedArray1D<int> pinned;
    private readonly DeviceEvent copied;
    private bool inFlight;

    public PinnedHostBuffer(ComputeDevice device, int capacity)
    {
        this.device = device;
        pinned = device.Accelerator.AllocatePageLocked1D<int>(capacity, uninitialized: false);
        copied = device.CreateEvent();
    }

    public int Capacity => (int)pinned.Length;

    /// <summary>The host memory; write it only when no copy from it is in flight.</summary>
    public Span<int> Span => pinned.Span;

    /// <summary>
    /// Queues the copy of the first <paramref name="length"/> values into <paramref name="target"/> on the current
    /// stream and records the event that marks its end. Counted as an upload, not a host synchronisation.
    /// </summary>
    public void CopyTo(ArrayView<int> target, int length)
    {
        if (length > Capacity || length != target.Length)
            throw new ArgumentException($"Cannot copy {length} values of a {Capacity}-value buffer into {target.Length}.");
        var stream = device.CurrentStream;
        target.CopyFrom(stream.Native, pinned.ArrayView.SubView(0, length));
        copied.Record(stream);
        inFlight = true;
        device.Counters.PinnedUpload(4L * length);
    }

    /// <summary>
    /// Returns once the last copy from this buffer has finished, so the host may write it again. The copy was
    /// queued a step ago, ahead of that step's kernels, so on a GPU this waits only when the host has run a whole
    /// step ahead of the device, and the device then has queued work: it never idles because of it. Counted
    /// apart from host synchronisations (<see cref="LaunchCounters.StagingWaits"/>) for that reason.
    /// </summary>
    public void WaitUntilCopied()
    {
        if (!inFlight) return;
        if (!copied.IsDone)
        {
            device.Counters.StagingWait();
            copied.Wait();
        }
        inFlight = false;
    }

    public void Dispose()
    {
        if (inFlight && !device.IsDisposed) copied.Wait(); // the driver may still read these pages
        copied.Dispose();
        pinned.Dispose();
    }
}
