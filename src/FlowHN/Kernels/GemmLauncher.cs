using FlowHN.Runtime;
using FlowHN.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

/// <summary>
/// Matrix products for every layer. Backends: cuBLAS on CUDA when it loads, SIMD host code on the CPU
/// accelerator, and the ILGPU tiled kernel (the fallback everywhere, and what --gemm ilgpu forces).
/// Operands are rank-2 tensors or rank-3 batches, possibly transposed views.
/// </summary>
internal sealed class GemmLauncher : KernelFamily, IDisposable
{
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape, int> tiled;
    private readonly CublasHandle? cublas;
    // One cuBLAS handle per stream: a handle's workspace must not be shared by two streams running at once.
    private readonly Dictionary<DeviceStream, CublasHandle> streamHandles = new();
    private readonly bool host;

    public GemmLauncher(ComputeDevice device) : base(device)
    {
        tiled = Load<ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape, int>(GemmKernels.GemmTiled);
        var requested = device.Options.Gemm;
        if (device.IsCuda && requested != GemmBackendKind.Ilgpu)
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

    /// <summary>Whether matrix products run in TF32 (decides which peak MFU uses).</summary>
    public bool UsesTf32 => cublas is not null && Device.Options.Tf32;

    /// <summary>
    /// c = alpha * a @ b + beta * c. Shapes [M,K] x [K,N] -> [M,N], or batched [B,M,K] x [B,K,N] -> [B,M,N]
    /// (a rank-2 operand is shared by every batch). Transposed views are fine; c must be contiguous.
    /// </summary>
    public void MatMul(Tensor a, Tensor b, Tensor c, float alpha = 1f, float beta = 0f)
    {
        var s = Describe(a, b, c, alpha, beta, out int batch);
        if (s.M == 0 || s.N == 0) return;
        Counters.Matmul(s.M, s.N, s.K, batch);
        if (s.K == 0)
        {
            Device.Kernels.Elementwise.Scale(c.View, c.View, beta);
            return;
        }
        if (cublas is not null && CublasGemmCall.For(s) is { } call)
            HandleFor(Device.CurrentStream).Gemm(Device.CurrentStream.NativeHandle, s, call, batch, Pointer(a), Pointer(b),
                c.View.LoadEffectiveAddressAsPtr());
        else if (host)
            RunHost(a, b, c, s, batch);
        else
            RunTiled(a.StridedView, b.StridedView, c.View, s, batch);
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

    private unsafe void RunHost(Tensor a, Tensor b, Tensor c, in GemmShape s, int batch)
    {
        // The operands may still be written by queued kernels. Only the CPU accelerator runs host GEMMs, and
        // there launches are serial, so this is no wait a GPU would have (not counted).
        Device.CurrentStream.Native.Synchronize();
        HostGemm.Run((float*)Pointer(a), (float*)Pointer(b), (float*)c.View.LoadEffectiveAddressAsPtr(), s, batch);
    }

    private static IntPtr Pointer(Tensor t) => t.Block.View.SubView(t.Offset).LoadEffectiveAddressAsPtr();

    internal static GemmShape Describe(Tensor a, Tensor b, Tensor c, float alpha, float beta, out int batch)
    {
        if (!c.IsContiguous) throw new ArgumentException("MatMul output must be contiguous.");
        if (a.Rank is < 2 or > 3 || b.Rank is < 2 or > 3 || c.Rank != Math.Max(a.Rank, b.Rank))
            throw new ArgumentException($"MatMul shapes {a.ShapeString} x {b.ShapeString} -> {c.ShapeString} not supported.");
        batch = c.Rank == 3 ? c.Shape[0] : 1;
        int m = a.Dim(-2), k = a.Dim(-1), n = b.Dim(-1);
        if (b.Dim(-2) != k || c.Dim(-2) != m || c.Dim(-1) != n || (a.Rank == 3 && a.Shape[0] != batch) ||
            (b.Rank == 3 && b.Shape[0] != batch))
            throw new ArgumentException($"MatMul shapes {a.ShapeString} x {b.ShapeString} -> {c.ShapeString} do not match.");
        return new GemmShape
        {
            M = m, N = n, K = k,
            ARow = (int)a.Strides[^2], ACol = (int)a.Strides[^1],
            BRow = (int)b.Strides[^2], BCol = (int)b.Strides[^1],
            CRow = (int)c.Strides[^2],
            ABatch = a.Rank == 3 ? a.Strides[0] : 0,
            BBatch = b.Rank == 3 ? b.Strides[0] : 0,
            CBatch = c.Rank == 3 ? c.Strides[0] : 0,
            Alpha = alpha, Beta = beta,
        };
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
