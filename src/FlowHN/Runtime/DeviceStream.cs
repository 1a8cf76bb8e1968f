using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace FlowHN.Runtime;

/// <summary>An accelerator stream plus cross-stream ordering through events.</summary>
public sealed class DeviceStream : IDisposable
{
    private readonly bool owned;
    private readonly LaunchCounters counters;

    internal DeviceStream(AcceleratorStream stream, bool owned, LaunchCounters counters, int? priority = null)
    {
        Native = stream;
        this.owned = owned;
        this.counters = counters;
        RequestedPriority = priority;
    }

    public AcceleratorStream Native { get; }

    /// <summary>
    /// The CUDA priority the stream was made with through the driver (lower is more urgent); null for a stream at
    /// the default priority and on the CPU accelerator.
    /// </summary>
    public int? RequestedPriority { get; }

    /// <summary>The priority the driver reports for this stream (cuStreamGetPriority); null where there is no CUDA stream.</summary>
    public int? QueryPriority()
    {
        if (Native is not CudaStream) return null;
        CudaDriver.Check(CudaDriver.StreamGetPriority(NativeHandle, out int priority), "cuStreamGetPriority");
        return priority;
    }

    internal IntPtr NativeHandle => Native is CudaStream cuda ? cuda.StreamPtr : IntPtr.Zero;

    /// <summary>Makes all later work on this stream wait for <paramref name="evt"/> (no host wait).</summary>
    public void Wait(DeviceEvent evt)
    {
        if (evt.Handle != IntPtr.Zero)
            CudaDriver.Check(CudaDriver.StreamWaitEvent(NativeHandle, evt.Handle, 0), "cuStreamWaitEvent");
    }

    /// <summary>Blocks the host until the stream's queued work is done (counted: see LaunchCounters.HostSyncs).</summary>
    public void Synchronize()
    {
        counters.HostSync();
        Native.Synchronize();
    }

    public void Dispose()
    {
        if (owned) Native.Dispose();
    }
}
