namespace FlowHN.Runtime;

public enum DeviceKind { Auto, Cuda, Cpu }

public enum GemmBackendKind { Auto, Ilgpu, Cublas, Host }

/// <summary>How attention runs: the flash kernels, or query blocks of batched matrix products (see Ops.Attention).</summary>
public enum AttentionPathKind { Auto, Flash, Gemm }

/// <summary>Everything that decides which device runs and how; parsed from the command line.</summary>
public sealed record DeviceOptions
{
    public DeviceKind Device { get; init; } = DeviceKind.Auto;
    public GemmBackendKind Gemm { get; init; } = GemmBackendKind.Auto;
    /// <summary>Attention path: auto is gemm on CUDA with cuBLAS (tensor cores), flash otherwise.</summary>
    public AttentionPathKind Attention { get; init; } = AttentionPathKind.Auto;
    /// <summary>Query rows per block of the gemm attention path (0 = the default; tests use tiny blocks).</summary>
    public int AttentionQueryBlock { get; init; }
    /// <summary>Which CUDA device to open (a data-parallel rank uses its local rank).</summary>
    public int CudaDevice { get; init; }
    /// <summary>Tensor-core TF32 matrix products on CUDA (opt-in: it changes results in the 4th digit).</summary>
    public bool Tf32 { get; init; }
    /// <summary>Caps the device memory the allocator may use, in GiB (0 = no cap), e.g. on a shared GPU.</summary>
    public double MemoryLimitGiB { get; init; }
    /// <summary>Overrides the peak FLOP/s table, in TFLOP/s.</summary>
    public double? PeakTflops { get; init; }
    /// <summary>CPU accelerator: threads per warp (at least 2 so warp-level code paths are exercised).</summary>
    public int CpuWarpSize { get; init; } = 2;
    /// <summary>CPU accelerator: warps per group.</summary>
    public int CpuWarpsPerGroup { get; init; } = 1;
    /// <summary>
    /// CPU accelerator: worker threads in all (0 = one per core). Each multiprocessor runs one group of
    /// warp size x warps per group threads, so this must be a multiple of that.
    /// </summary>
    public int CpuThreads { get; init; }
    /// <summary>
    /// CPU accelerator: threads per row in row kernels (norms, cross-entropy). 1 avoids barriers, which are
    /// costly on CPU threads; tests use more to exercise the shared-memory reductions GPUs run.
    /// </summary>
    public int CpuLanesPerRow { get; init; } = 1;
    /// <summary>Compile kernels with full optimisation (slower start-up, faster kernels).</summary>
    public bool Optimize { get; init; } = true;
    /// <summary>
    /// A shape-only device (see <see cref="ComputeDevice.IsMeta"/>): blocks have sizes but no memory, launches are
    /// counted but never run. It measures a model (parameters, FLOPs, memory) at any size without the memory.
    /// </summary>
    public bool Meta { get; init; }

    public static DeviceKind ParseDevice(string value) => value.ToLowerInvariant() switch
    {
        "auto" => DeviceKind.Auto,
        "cuda" or "gpu" => DeviceKind.Cuda,
        "cpu" => DeviceKind.Cpu,
        _ => throw new UserException($"Unknown device '{value}'. Use one of: auto, cuda, cpu."),
    };

    public static GemmBackendKind ParseGemm(string value) => value.ToLowerInvariant() switch
    {
        "auto" => GemmBackendKind.Auto,
        "ilgpu" => GemmBackendKind.Ilgpu,
        "cublas" => GemmBackendKind.Cublas,
        "host" => GemmBackendKind.Host,
        _ => throw new UserException($"Unknown GEMM backend '{value}'. Use one of: auto, ilgpu, cublas, host."),
    };

    public static AttentionPathKind ParseAttention(string value) => value.ToLowerInvariant() switch
    {
        "auto" => AttentionPathKind.Auto,
        "flash" => AttentionPathKind.Flash,
        "gemm" => AttentionPathKind.Gemm,
        _ => throw new UserException($"Unknown attention path '{value}'. Use one of: auto, flash, gemm."),
    };
}
