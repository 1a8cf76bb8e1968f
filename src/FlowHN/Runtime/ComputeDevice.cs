using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace FlowHN.Runtime;

/// <summary>
/// The one place that owns the ILGPU context and accelerator, its streams, the caching allocator and the launch
/// counters. It knows nothing of what runs on it: kernel launchers and the execution state of a model sit in
/// the layers above and are given a device.
/// </summary>
public sealed class ComputeDevice : IDisposable
{
    private ComputeDevice(Context context, Accelerator accelerator, DeviceOptions options)
    {
        Context = context;
        Accelerator = accelerator;
        Options = options;
        IsMeta = options.Meta;
        // A shape-only device stands for the kind it was asked to be, so launchers size their work (and scratch) for it.
        IsCuda = IsMeta ? options.Device == DeviceKind.Cuda : accelerator.AcceleratorType == AcceleratorType.Cuda;
        DefaultStream = new DeviceStream(accelerator.DefaultStream, owned: false, Counters);
        CurrentStream = DefaultStream;
        Allocator = new CachingAllocator(accelerator, (long)(options.MemoryLimitGiB * (1L << 30)), IsMeta);
        StreamPriorities = accelerator is CudaAccelerator ? QueryPriorityRange() : null;
        Peak = options.PeakTflops is double t ? PeakFlops.Override(t) : PeakFlops.Lookup(accelerator.Name, EstimatePeak());
    }

    public Context Context { get; }
    public Accelerator Accelerator { get; }
    public DeviceOptions Options { get; }
    public bool IsCuda { get; }

    /// <summary>
    /// A shape-only device: the allocator keeps its books (sizes, buckets, peaks) without memory, launchers count
    /// their launches and FLOPs without running them, host copies move nothing (downloads read zeros). Running a
    /// model's training step on it gives the counters and the allocator's trace that the real step would. Asked
    /// for as <see cref="DeviceKind.Cuda"/> it is a GPU to the launchers (runs on the CPU accelerator, with its
    /// warp size), so a GPU's step is measured on a machine without one.
    /// </summary>
    public bool IsMeta { get; }
    public bool IsDisposed { get; private set; }
    public string Name => Accelerator.Name;
    public DeviceStream DefaultStream { get; }

    /// <summary>The stream kernel launches go to; switch it with <see cref="UseStream"/>.</summary>
    public DeviceStream CurrentStream { get; internal set; }

    internal LaunchCounters Counters { get; } = new();
    public CachingAllocator Allocator { get; }
    public PeakFlops Peak { get; }
    /// <summary>Threads per group kernels should use for one-dimensional work on this device.</summary>
    public int GroupSize => IsCuda ? 256 : Accelerator.MaxNumThreadsPerGroup;

    public static ComputeDevice Create(DeviceOptions? options = null)
    {
        options ??= new DeviceOptions();
        NativeLibraries.Register();
        bool wantCuda = options.Device != DeviceKind.Cpu && !options.Meta;
        var cpu = new CPUDevice(options.CpuWarpSize, options.CpuWarpsPerGroup, CpuMultiprocessors(options));
        Context context = Context.Create(builder =>
        {
            builder.Optimize(options.Optimize ? OptimizationLevel.O2 : OptimizationLevel.O1).EnableAlgorithms();
            builder.CPU(cpu);
            if (wantCuda) TryAddCuda(builder);
        });
        try
        {
            var cudaDevices = context.GetCudaDevices();
            if (options.Device == DeviceKind.Cuda && cudaDevices.Count == 0 && !options.Meta)
                throw new UserException("No CUDA device was found (is the NVIDIA driver installed and libcuda.so.1 on the " +
                                        "library path?). Use --device cpu to run on the CPU.");
            if (wantCuda && cudaDevices.Count > 0 && options.CudaDevice >= cudaDevices.Count)
                throw new UserException($"CUDA device {options.CudaDevice} was asked for (one process per GPU, by local rank) but this machine " +
                                        $"has {cudaDevices.Count}. Start at most {cudaDevices.Count} processes per machine.");
            Accelerator accelerator = wantCuda && cudaDevices.Count > 0
                ? context.CreateCudaAccelerator(options.CudaDevice)
                : context.CreateCPUAccelerator(0, CPUAcceleratorMode.Parallel);
            return new ComputeDevice(context, accelerator, options);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The CPU accelerator's multiprocessors: each runs one group, so the threads are multiprocessors x threads per
    /// group. By default one OS thread per core in total: more threads than cores makes group barriers wait on
    /// descheduled threads.
    /// </summary>
    private static int CpuMultiprocessors(DeviceOptions options)
    {
        int threadsPerGroup = options.CpuWarpSize * options.CpuWarpsPerGroup;
        if (options.CpuThreads <= 0) return Math.Max(1, Environment.ProcessorCount / threadsPerGroup);
        if (options.CpuThreads % threadsPerGroup != 0)
            throw new UserException($"--cpu-threads {options.CpuThreads}: the CPU accelerator runs groups of {threadsPerGroup} " +
                                    $"threads, so use a multiple of {threadsPerGroup}.");
        return options.CpuThreads / threadsPerGroup;
    }

    /// <summary>Threads the CPU accelerator runs at once (0 on CUDA).</summary>
    public int CpuThreads => IsCuda ? 0 : Accelerator.NumMultiprocessors * Accelerator.MaxNumThreadsPerGroup;

    private static void TryAddCuda(Context.Builder builder)
    {
        try
        {
            builder.Cuda();
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or EntryPointNotFoundException)
        {
            // No CUDA driver on this machine: the CPU accelerator remains.
        }
    }

    /// <summary>A rough fp32 peak for devices missing from the table (clearly labelled an estimate).</summary>
    private double EstimatePeak()
    {
        if (Accelerator is CudaAccelerator cuda)
            return cuda.NumMultiprocessors * 128.0 * 2.0 * cuda.ClockRate * 1e3; // 128 fp32 lanes per SM, FMA = 2
        return Environment.ProcessorCount * 3e9 * 32; // AVX2: two 8-wide FMA units at ~3 GHz
    }

    /// <summary>
    /// The stream priorities of this CUDA device; null on the CPU accelerator (and on a shape-only device), where
    /// streams run one after the other and a priority changes nothing.
    /// </summary>
    public StreamPriorityRange? StreamPriorities { get; }

    private static StreamPriorityRange QueryPriorityRange()
    {
        CudaDriver.Check(CudaDriver.CtxGetStreamPriorityRange(out int least, out int greatest), "cuCtxGetStreamPriorityRange");
        return new StreamPriorityRange(least, greatest);
    }

    /// <summary>
    /// A new stream. With <paramref name="highPriority"/> on CUDA it is created through the driver at the device's
    /// greatest priority (ILGPU creates streams at the default one only) and handed to ILGPU, which launches on it
    /// and destroys it when disposed: the GPU's scheduler then dispatches its waiting thread blocks before those
    /// of default-priority streams as SMs free up. Elsewhere the priority is a no-op.
    /// </summary>
    public DeviceStream CreateStream(bool highPriority = false)
    {
        if (!highPriority || Accelerator is not CudaAccelerator cuda || StreamPriorities is not { HasLevels: true } range)
            return new(Accelerator.CreateStream(), owned: true, Counters);
        cuda.Bind(); // the driver creates the stream in the calling thread's current context
        CudaDriver.Check(CudaDriver.StreamCreateWithPriority(out IntPtr handle, CudaDriver.StreamNonBlocking, range.Greatest),
            "cuStreamCreateWithPriority");
        return new(cuda.CreateStream(handle, responsible: true), owned: true, Counters, range.Greatest);
    }

    /// <summary>Sends launches to <paramref name="stream"/> until the returned scope is disposed.</summary>
    public IDisposable UseStream(DeviceStream stream)
    {
        var previous = CurrentStream;
        CurrentStream = stream;
        return new Restore(() => CurrentStream = previous);
    }

    private sealed class Restore(Action restore) : IDisposable
    {
        public void Dispose() => restore();
    }

    public DeviceEvent CreateEvent(bool timing = false) => new(this, timing);

    /// <summary>Blocks the host until every stream is idle (counted: see LaunchCounters.HostSyncs).</summary>
    public void Synchronize()
    {
        Counters.HostSync();
        Accelerator.Synchronize();
    }

    /// <summary>Device memory; for the CPU accelerator (which reports no limit) the memory available to this process.</summary>
    public long MemoryBytes => IsCuda ? Accelerator.MemorySize : GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;

    public string Describe() =>
        $"{Name} ({(IsCuda ? "CUDA" : "CPU accelerator")}, {MemoryBytes / (double)(1L << 30):0.##} GiB, " +
        $"{Accelerator.NumMultiprocessors} multiprocessors, warp {Accelerator.WarpSize}, " +
        $"{Accelerator.MaxNumThreadsPerGroup} threads per group max" + (IsCuda ? ")" : $", {CpuThreads} threads)");

    public void Dispose()
    {
        if (IsDisposed) return;
        Synchronize();
        Allocator.Dispose();
        IsDisposed = true;
        Accelerator.Dispose();
        Context.Dispose();
    }
}
