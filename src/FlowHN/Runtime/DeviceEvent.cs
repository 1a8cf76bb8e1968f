using System.Diagnostics;

namespace FlowHN.Runtime;

/// <summary>
/// A point in a stream's work. On CUDA a real driver event (record, wait, elapsed time); on the CPU
/// accelerator launches are serialised, so ordering is already given and timing falls back to the host
/// clock after a synchronise.
/// </summary>
public sealed class DeviceEvent : IDisposable
{
    private readonly ComputeDevice device;
    private IntPtr handle;
    private long hostTicks;

    internal DeviceEvent(ComputeDevice device, bool timing)
    {
        this.device = device;
        if (device.IsCuda && !device.IsMeta)
            CudaDriver.Check(CudaDriver.EventCreate(out handle, timing ? CudaDriver.EventDefault : CudaDriver.EventDisableTiming),
                "cuEventCreate");
    }

    public void Record(DeviceStream stream)
    {
        if (handle != IntPtr.Zero) CudaDriver.Check(CudaDriver.EventRecord(handle, stream.NativeHandle), "cuEventRecord");
        else
        {
            // CPU accelerator: launches already run in order, so this wait is for the host clock only (not
            // counted as a host synchronisation: a GPU records the event without one).
            stream.Native.Synchronize();
            hostTicks = Stopwatch.GetTimestamp();
        }
    }

    /// <summary>Blocks the host until the recorded work is done.</summary>
    public void Synchronize()
    {
        if (handle == IntPtr.Zero) return;
        device.Counters.HostSync();
        CudaDriver.Check(CudaDriver.EventSynchronize(handle), "cuEventSynchronize");
    }

    /// <summary>Whether the recorded work is done (asks the driver without waiting; always true on the CPU).</summary>
    public bool IsDone
    {
        get
        {
            if (handle == IntPtr.Zero) return true;
            int status = CudaDriver.EventQuery(handle);
            if (status == CudaDriver.NotReady) return false;
            CudaDriver.Check(status, "cuEventQuery");
            return true;
        }
    }

    /// <summary>Blocks the host until the recorded work is done, uncounted: the caller counts the wait as what it is.</summary>
    internal void Wait()
    {
        if (handle != IntPtr.Zero) CudaDriver.Check(CudaDriver.EventSynchronize(handle), "cuEventSynchronize");
    }

    /// <summary>Milliseconds between two recorded events (both must have completed).</summary>
    public static double ElapsedMilliseconds(DeviceEvent start, DeviceEvent end)
    {
        if (start.handle != IntPtr.Zero && end.handle != IntPtr.Zero)
        {
            end.Synchronize();
            CudaDriver.Check(CudaDriver.EventElapsedTime(out float ms, start.handle, end.handle), "cuEventElapsedTime");
            return ms;
        }
        return (end.hostTicks - start.hostTicks) * 1000.0 / Stopwatch.Frequency;
    }

    internal IntPtr Handle => handle;

    public void Dispose()
    {
        if (handle != IntPtr.Zero && !device.IsDisposed) CudaDriver.EventDestroy(handle);
        handle = IntPtr.Zero;
    }
}
