using System.Reflection;
using FlowHN.Kernels;
using FlowHN.Runtime;

namespace FlowHN.Tensors;

/// <summary>
/// What tensors are made in: a compute device, the kernel launchers that work on it, and the memory scope that
/// new blocks belong to. The execution context that derives from it (Autograd's Session) owns the scope stack,
/// and with it the tape and grad mode, which tensors know nothing of.
/// </summary>
public abstract class TensorDevice : IScratchMemory, IDisposable
{
    private protected TensorDevice(ComputeDevice runtime)
    {
        Runtime = runtime;
        Kernels = new KernelRegistry(runtime, this);
    }

    /// <summary>The device itself: accelerator, streams, allocator, launch counters.</summary>
    public ComputeDevice Runtime { get; }

    /// <summary>This context's kernel launchers; their scratch memory follows <see cref="CurrentScope"/>.</summary>
    internal KernelRegistry Kernels { get; }

    /// <summary>The innermost open scope, which new tensors and launch scratch belong to; null when none is open.</summary>
    internal abstract TensorScope? CurrentScope { get; }

    /// <summary>What computes matrix products here (cuBLAS or the ILGPU tiled kernel), for reports.</summary>
    public string MatmulBackend => Kernels.Gemm.BackendName;

    /// <summary>Why cuBLAS is not used on this device, or empty.</summary>
    public string? MatmulFallbackReason => Kernels.Gemm.FallbackReason;

    /// <summary>Whether matrix products use TF32 tensor cores (so MFU compares against the TF32 peak).</summary>
    public bool MatmulUsesTf32 => Kernels.Gemm.UsesTf32;

    /// <summary>Why matrix products run slower than they could on this device, or null.</summary>
    public string? MatmulWarning => Kernels.Gemm.Warning;

    /// <summary>
    /// Whether attention runs as batched matrix products (--attention gemm) rather than the flash kernels. Auto
    /// picks gemm on CUDA when cuBLAS is loaded (its tensor cores are the point); a shape-only CUDA device assumes
    /// cuBLAS unless --gemm ilgpu, so the memory model counts the gemm path's score blocks.
    /// </summary>
    internal bool GemmAttention => Runtime.Options.Attention switch
    {
        AttentionPathKind.Gemm => true,
        AttentionPathKind.Flash => false,
        _ => Runtime.IsCuda && (Runtime.IsMeta ? Runtime.Options.Gemm != GemmBackendKind.Ilgpu : Kernels.Gemm.UsesCublas),
    };

    /// <summary>Which attention path runs, for the line that names the matrix-product backend.</summary>
    public string AttentionPath => GemmAttention
        ? $"gemm (query blocks of {Kernels.AttentionGemm.QueryBlock} rows, batched matrix products)"
        : "flash kernels";

    /// <summary>Every kernel method the launchers load, for compiling them ahead of time (the PTX report).</summary>
    public IEnumerable<MethodInfo> KernelMethods => Kernels.AllKernelMethods;

    /// <summary>
    /// Scratch inside a scope is returned by the scope (at its end, or with the layer it belongs to, on the main
    /// stream): with several streams a block freed at once could be handed to another stream while this one still
    /// reads it. Outside a scope (one stream) it returns when the launch sequence is done.
    /// </summary>
    DeviceBlock IScratchMemory.Rent(long elements)
    {
        var block = Runtime.Allocator.Allocate(elements);
        CurrentScope?.Track(block);
        return block;
    }

    void IScratchMemory.Return(DeviceBlock block)
    {
        if (CurrentScope is null) Runtime.Allocator.Free(block);
    }

    public virtual void Dispose() => Kernels.Dispose();
}
