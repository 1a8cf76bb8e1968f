using FlowHN.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

/// <summary>
/// Matrix products for every layer. Backends: cuBLAS on CUDA when it loads, SIMD host code on the CPU
/// accelerator, and the ILGPU tiled kernel (the fallback everywhere, and what --gemm ilgpu forces).
/// Operands are views with a <see cref="GemmShape"/> that gives their sizes and strides (rank-2 matrices or
/// rank-3 batches, possibly transposed).
/// </summary>
internal sealed class GemmLauncher : KernelFamily, IDisposable
{
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape, int> tiled;
    private readonly CublasHandle? cublas;
    // One cuBLAS handle per stream: a handle's workspace must not be shared by two streams running at once.
    private readonly Dictionary<DeviceStream, CublasHandle> streamHandles = new();
    private readonly bool host;
    private readonly Lazy<ElementwiseLauncher> elementwise; // scales c when K = 0

    public GemmLauncher(ComputeDevice device, IScratchMemory scratch, Lazy<ElementwiseLauncher> elementwise) : base(device, scratch)
    {
        this.elementwise = elementwise;
        tiled = Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape, int>(GemmKernels.GemmTiled);
        var requested = device.Options.Gemm;
        if (device.IsCuda && !device.IsMeta && requested != GemmBackendKind.Ilgpu)
        {
            NativeLibraries.Register();
            cublas = CublasHandle.TryCreate(device.Options.Tf32, out string reason);
            if (cublas is null && requested == GemmBackendKind.Cublas)
                throw new UserException($"--gemm cublas was requested but {reason}. Use --gemm ilgpu or install cuBLAS.");
            FallbackReason = reason;
        }
        else if (requested == GemmBackendKind.Cublas)
            throw new UserException("--gemm cublas needs a CUDA device; this run uses the CPU accelerator.");
        if (requested == GemmBackendKind.Host && device.IsCuda)
            throw new UserException("--gemm host is for the CPU accelerator; on CUDA use auto, cublas or ilgpu.");
        host = !device.IsCuda && requested is GemmBackendKind.Auto or GemmBackendKind.Host;
        string cublasName = cublas is null ? "" : $"cuBLAS {CublasLibrary.Current.Version}".TrimEnd();
        BackendName = cublas is not null ? (device.Options.Tf32 ? $"{cublasName} (TF32 tensor cores)" : $"{cublasName} (fp32)")
            : host ? "host SIMD (CPU accelerator memory)"
            : FallbackReason is not null ? "ILGPU tiled (WITHOUT cuBLAS: not found, see the warning)" : "ILGPU tiled";
        if (FallbackReason is not null)
            Warning = $"CUDA runs WITHOUT cuBLAS ({FallbackReason}): matrix products use the ILGPU tiled kernel, about 3-5x " +
                      $"slower{(device.Options.Tf32 ? ", and --tf32 has no effect" : "")}. Install cuBLAS (e.g. PyTorch's " +
                      $"nvidia-cublas wheel) or set {CublasSearch.Variable}=/path/to/libcublas.so.N.";
    }

    public string BackendName { get; }

    /// <summary>Why cuBLAS is not used on a CUDA device, if it is not.</summary>
    public string? FallbackReason { get; }

    /// <summary>What a run on CUDA without cuBLAS must say loudly (null when nothing is wrong).</summary>
    public string? Warning { get; }

    /// <summary>Whether matrix products run on cuBLAS (what the gemm attention path is for).</summary>
    public bool UsesCublas => cublas is not null;

    /// <summary>Whether matrix products run in TF32 (decides which peak MFU uses).</summary>
    public bool UsesTf32 => cublas is not null && Device.Options.Tf32;

    /// <summary>
    /// c = alpha * a @ b + beta * c (alpha and beta in <paramref name="s"/>), <paramref name="batch"/> products.
    /// <paramref name="a"/> and <paramref name="b"/> start at their first element and are read with the strides in
    /// <paramref name="s"/>; <paramref name="c"/> is contiguous.
    /// </summary>
    public void MatMul(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, in GemmShape s, int batch)
    {
        if (s.M == 0 || s.N == 0) return;
        Counters.Matmul(s.M, s.N, s.K, batch);
        if (Device.IsMeta) return; // counted, nothing to compute
        if (s.K == 0)
        {
            elementwise.Value.Scale(c, c, s.Beta);
            return;
        }
        if (cublas is not null && CublasGemmCall.For(s) is { } call)
            HandleFor(Device.CurrentStream).Gemm(Device.CurrentStream.NativeHandle, s, call, batch, a.LoadEffectiveAddressAsPtr(),
                b.LoadEffectiveAddressAsPtr(), c.LoadEffectiveAddressAsPtr());
        else if (host)
            RunHost(a, b, c, s, batch);
        else
            RunTiled(a, b, c, s, batch);
    }

    /// <summary>Runs the ILGPU kernel with explicit tile parameters (tests use small tiles for ragged edges).</summary>
    internal void RunTiled(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int batch,
        int threadsX = 0, int threadsY = 0, int tileK = 0)
    {
        if (threadsX == 0)
        {
            // CUDA: 16x16 threads, 64x64 tiles. CPU: the whole (small) group along N, one row of threads.
            threadsX = Device.IsCuda ? 16 : Device.Accelerator.MaxNumThreadsPerGroup;
            threadsY = Device.IsCuda ? 16 : 1;
            tileK = Device.IsCuda ? 16 : 32;
        }
        int tileM = 4 * threadsY, tileN = 4 * threadsX;
        var grid = new Index3D((s.N + tileN - 1) / tileN, (s.M + tileM - 1) / tileM, batch);
        int shared = tileK * (tileM + 1) + tileK * (tileN + 1);
        tiled(Stream, Launch.Config(grid, new Index3D(threadsX, threadsY, 1), shared), a, b, c, s, tileK);
    }

    private unsafe void RunHost(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, in GemmShape s, int batch)
    {
        // The operands may still be written by queued kernels. Only the CPU accelerator runs host GEMMs, and
        // there launches are serial, so this is no wait a GPU would have (not counted).
        Device.CurrentStream.Native.Synchronize();
        HostGemm.Run((float*)a.LoadEffectiveAddressAsPtr(), (float*)b.LoadEffectiveAddressAsPtr(),
            (float*)c.LoadEffectiveAddressAsPtr(), s, batch);
    }

    /// <summary>Destroys the cuBLAS handle of a stream that is going away (branch streams are made and dropped).</summary>
    internal void ForgetStream(DeviceStream stream)
    {
        if (!streamHandles.Remove(stream, out var handle)) return;
        stream.Synchronize(); // the handle's queued work finishes before it goes
        handle.Dispose();
    }

    private CublasHandle HandleFor(DeviceStream stream)
    {
        if (stream == Device.DefaultStream) return cublas!;
        if (!streamHandles.TryGetValue(stream, out var handle))
        {
            handle = CublasHandle.TryCreate(Device.Options.Tf32, out string reason)
                     ?? throw new InvalidOperationException($"A second cuBLAS handle could not be created: {reason}.");
            streamHandles[stream] = handle;
        }
        return handle;
    }

    public void Dispose()
    {
        cublas?.Dispose();
        foreach (var handle in streamHandles.Values) handle.Dispose();
    }
}
