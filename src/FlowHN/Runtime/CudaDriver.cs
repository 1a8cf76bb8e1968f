using System.Runtime.InteropServices;

namespace FlowHN.Runtime;

/// <summary>
/// The few CUDA driver calls ILGPU does not expose: events for cross-stream ordering and device timing, and
/// streams with a scheduling priority.
/// "cuda" resolves to libcuda.so.1 through <see cref="NativeLibraries"/>.
/// </summary>
internal static class CudaDriver
{
    private const string Lib = "cuda";
    public const uint EventDefault = 0x0;
    public const uint EventDisableTiming = 0x2;
    public const int NotReady = 600; // CUDA_ERROR_NOT_READY: cuEventQuery's "not yet"
    public const uint StreamNonBlocking = 0x1; // CU_STREAM_NON_BLOCKING, as ILGPU's own streams

    [DllImport(Lib, EntryPoint = "cuEventCreate")]
    public static extern int EventCreate(out IntPtr handle, uint flags);

    [DllImport(Lib, EntryPoint = "cuEventDestroy_v2")]
    public static extern int EventDestroy(IntPtr handle);

    [DllImport(Lib, EntryPoint = "cuEventRecord")]
    public static extern int EventRecord(IntPtr handle, IntPtr stream);

    [DllImport(Lib, EntryPoint = "cuStreamWaitEvent")]
    public static extern int StreamWaitEvent(IntPtr stream, IntPtr handle, uint flags);

    [DllImport(Lib, EntryPoint = "cuEventSynchronize")]
    public static extern int EventSynchronize(IntPtr handle);

    [DllImport(Lib, EntryPoint = "cuEventQuery")]
    public static extern int EventQuery(IntPtr handle);

    [DllImport(Lib, EntryPoint = "cuEventElapsedTime")]
    public static extern int EventElapsedTime(out float milliseconds, IntPtr start, IntPtr end);

    /// <summary>The current context's priorities: least (usually 0, a plain stream's) and greatest (a lower number, e.g. -5).</summary>
    [DllImport(Lib, EntryPoint = "cuCtxGetStreamPriorityRange")]
    public static extern int CtxGetStreamPriorityRange(out int least, out int greatest);

    [DllImport(Lib, EntryPoint = "cuStreamCreateWithPriority")]
    public static extern int StreamCreateWithPriority(out IntPtr stream, uint flags, int priority);

    [DllImport(Lib, EntryPoint = "cuStreamGetPriority")]
    public static extern int StreamGetPriority(IntPtr stream, out int priority);

    public static void Check(int status, string call)
    {
        if (status != 0) throw new InvalidOperationException($"CUDA driver call {call} failed with error {status}.");
    }
}
