using FlowHN.Runtime;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

/// <summary>Per-step AdamW settings (bias corrections precomputed on the host).</summary>
internal readonly record struct AdamWStep
{
    public float LearningRate { get; init; }
    public float Beta1 { get; init; }
    public float Beta2 { get; init; }
    public float Epsilon { get; init; }
    public float WeightDecay { get; init; }
    /// <summary>1 - beta1^t.</summary>
    public float BiasCorrection1 { get; init; }
    /// <summary>1 - beta2^t.</summary>
    public float BiasCorrection2 { get; init; }
}

/// <summary>Fused AdamW with decoupled weight decay, and gradient clipping by global norm.</summary>
internal static class OptimKernels
{
    /// <summary>
    /// One AdamW update. The gradient is multiplied by gradScale[0] first (the clipping factor, computed on the
    /// device, so clipping needs no host round trip).
    /// </summary>
    public static void AdamW(int n, ArrayView<float> param, ArrayView<float> grad, ArrayView<float> m, ArrayView<float> v,
        ArrayView<float> gradScale, AdamWStep s)
    {
        float scale = gradScale[0];
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        for (int i = first; i < n; i += stride)
        {
            float g = grad[i] * scale;
            float mi = s.Beta1 * m[i] + (1f - s.Beta1) * g;
            float vi = s.Beta2 * v[i] + (1f - s.Beta2) * g * g;
            m[i] = mi;
            v[i] = vi;
            float update = mi / s.BiasCorrection1 / (XMath.Sqrt(vi / s.BiasCorrection2) + s.Epsilon);
            param[i] -= s.LearningRate * (update + s.WeightDecay * param[i]);
        }
    }

    /// <summary>
    /// From the summed squares of all gradients: norm[0] = global norm, norm[1] = the factor that scales the
    /// gradients to at most <paramref name="maxNorm"/> (1 when within it or when maxNorm is 0). One thread.
    /// </summary>
    public static void ClipFactor(ArrayView<float> sumOfSquares, ArrayView<float> norm, float maxNorm)
    {
        if (Grid.GlobalIndex.X != 0) return;
        float total = XMath.Sqrt(sumOfSquares[0]);
        norm[0] = total;
        norm[1] = maxNorm > 0f && total > maxNorm ? maxNorm / (total + 1e-6f) : 1f;
    }
}

/// <summary>Typed entry points for <see cref="OptimKernels"/>.</summary>
internal sealed class OptimLauncher : KernelFamily
{
    private readonly Action<AcceleratorStream, KernelConfig, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamWStep> adamW;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, float> clipFactor;

    public OptimLauncher(ComputeDevice device, IScratchMemory scratch) : base(device, scratch)
    {
        adamW = Load<int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamWStep>(
            OptimKernels.AdamW);
        clipFactor = Load<ArrayView<float>, ArrayView<float>, float>(OptimKernels.ClipFactor);
    }

    /// <summary>
    /// One AdamW update of a range of any length, launched in chunks of at most <paramref name="chunkElements"/>
    /// elements (each element's update is independent, so chunking changes no result).
    /// </summary>
    public void AdamW(ArrayView<float> param, ArrayView<float> grad, ArrayView<float> m, ArrayView<float> v,
        ArrayView<float> gradScale, AdamWStep step, long chunkElements = Launch.MaxElements)
    {
        foreach (var (start, count) in Launch.Chunks(param.Length, Math.Min(chunkElements, Launch.MaxElements)))
        {
            Counters.Kernel();
            int n = (int)count;
            adamW(Stream, Launch.Grid1D(Device, n), n, param.SubView(start, count), grad.SubView(start, count),
                m.SubView(start, count), v.SubView(start, count), gradScale, step);
        }
    }

    public void ClipFactor(ArrayView<float> sumOfSquares, ArrayView<float> norm, float maxNorm)
    {
        Counters.Kernel();
        clipFactor(Stream, new KernelConfig(new Index3D(1, 1, 1), new Index3D(1, 1, 1)), sumOfSquares, norm, maxNorm);
    }
}
