using System.Runtime.CompilerServices;
using System.Reflection;
using FlowHN.Runtime;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

/// <summary>A pointwise function with its derivative side by side.</summary>
internal interface IUnaryFunction
{
    float Forward(float x);
    /// <summary>d Forward / dx at x.</summary>
    float Derivative(float x);
}

internal struct SiluFunction : IUnaryFunction
{
    public float Forward(float x) => x / (1f + XMath.Exp(-x));

    public float Derivative(float x)
    {
        float s = 1f / (1f + XMath.Exp(-x));
        return s * (1f + x * (1f - s));
    }
}

internal struct SoftplusFunction : IUnaryFunction
{
    // log(1 + e^x) without overflow: above 20 the correction is below float precision.
    public float Forward(float x) => x > 20f ? x : XMath.Log(1f + XMath.Exp(x));

    public float Derivative(float x) => 1f / (1f + XMath.Exp(-x));
}

internal struct ExpFunction : IUnaryFunction
{
    public float Forward(float x) => XMath.Exp(x);
    public float Derivative(float x) => XMath.Exp(x);
}

/// <summary>Element-wise kernels, all grid-stride loops over contiguous views.</summary>
internal static class ElementwiseKernels
{
    // Grid and group intrinsics are read once per kernel: on the CPU accelerator each read is a thread-static
    // lookup, and re-reading them in the loop condition made simple kernels ~50x slower.

    // One non-generic entry point per function: a profiler names a kernel after its method alone, so Map<Silu> and
    // Map<Exp> loaded directly would both show as Kernel_Map.
    public static void SiluForward(int n, ArrayView<float> x, ArrayView<float> y) => Map<SiluFunction>(n, x, y);
    public static void SoftplusForward(int n, ArrayView<float> x, ArrayView<float> y) => Map<SoftplusFunction>(n, x, y);
    public static void ExpForward(int n, ArrayView<float> x, ArrayView<float> y) => Map<ExpFunction>(n, x, y);

    public static void SiluBackward(int n, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx) =>
        MapBackward<SiluFunction>(n, x, dy, dx);

    public static void SoftplusBackward(int n, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx) =>
        MapBackward<SoftplusFunction>(n, x, dy, dx);

    public static void ExpBackward(int n, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx) =>
        MapBackward<ExpFunction>(n, x, dy, dx);

    /// <summary>y = f(x).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Map<TFunction>(int n, ArrayView<float> x, ArrayView<float> y)
        where TFunction : struct, IUnaryFunction
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        for (int i = first; i < n; i += stride) y[i] = default(TFunction).Forward(x[i]);
    }

    /// <summary>dx += f'(x) * dy.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MapBackward<TFunction>(int n, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx)
        where TFunction : struct, IUnaryFunction
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        for (int i = first; i < n; i += stride) dx[i] += default(TFunction).Derivative(x[i]) * dy[i];
    }

    /// <summary>y = alpha * a + beta * b (b may alias y; beta 0 never reads b).</summary>
    public static void LinearCombination(int n, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y, float alpha, float beta)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        for (int i = first; i < n; i += stride)
            y[i] = beta == 0f ? alpha * a[i] : alpha * a[i] + beta * b[i];
    }

    /// <summary>y = a * b.</summary>
    public static void Multiply(int n, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        for (int i = first; i < n; i += stride) y[i] = a[i] * b[i];
    }

    /// <summary>y += a * b (the backward of a product).</summary>
    public static void MultiplyAccumulate(int n, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        for (int i = first; i < n; i += stride) y[i] += a[i] * b[i];
    }

    /// <summary>y = value.</summary>
    public static void Fill(int n, ArrayView<float> y, float value)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        for (int i = first; i < n; i += stride) y[i] = value;
    }

    /// <summary>y += alpha * scalar[0] (broadcasts a scalar's gradient).</summary>
    public static void AccumulateScalar(int n, ArrayView<float> scalar, ArrayView<float> y, float alpha)
    {
        float value = alpha * scalar[0];
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        for (int i = first; i < n; i += stride) y[i] += value;
    }

    /// <summary>y = silu(a) * b, the SwiGLU gate.</summary>
    public static void SwiGlu(int n, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        for (int i = first; i < n; i += stride) y[i] = default(SiluFunction).Forward(a[i]) * b[i];
    }

    /// <summary>da += dy * b * silu'(a); db += dy * silu(a).</summary>
    public static void SwiGluBackward(int n, ArrayView<float> a, ArrayView<float> b, ArrayView<float> dy,
        ArrayView<float> da, ArrayView<float> db)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        for (int i = first; i < n; i += stride)
        {
            float g = dy[i];
            da[i] += g * b[i] * default(SiluFunction).Derivative(a[i]);
            db[i] += g * default(SiluFunction).Forward(a[i]);
        }
    }

    /// <summary>Gathers a strided rank-4 view (shape padded with leading 1s) into contiguous y.</summary>
    public static void StridedCopy(int n, ArrayView<float> x, ArrayView<float> y, StridedLayout layout)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        for (int i = first; i < n; i += stride) y[i] = x[layout.SourceIndex(i)];
    }

    /// <summary>The reverse of <see cref="StridedCopy"/>: scatters contiguous x into a strided view, adding.</summary>
    public static void StridedAccumulate(int n, ArrayView<float> x, ArrayView<float> y, StridedLayout layout)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        for (int i = first; i < n; i += stride) y[layout.SourceIndex(i)] += x[i];
    }
}

/// <summary>Shape and strides of a view of rank up to four, in a struct a kernel can take.</summary>
internal readonly record struct StridedLayout
{
    public int D1 { get; init; }
    public int D2 { get; init; }
    public int D3 { get; init; }
    public long S0 { get; init; }
    public long S1 { get; init; }
    public long S2 { get; init; }
    public long S3 { get; init; }

    public static StridedLayout From(int[] shape, long[] strides)
    {
        if (shape.Length > 4) throw new ArgumentException("Strided copies support rank up to 4.");
        int pad = 4 - shape.Length;
        int Dim(int i) => i < pad ? 1 : shape[i - pad];
        long StrideAt(int i) => i < pad ? 0 : strides[i - pad];
        return new StridedLayout
        {
            D1 = Dim(1), D2 = Dim(2), D3 = Dim(3),
            S0 = StrideAt(0), S1 = StrideAt(1), S2 = StrideAt(2), S3 = StrideAt(3),
        };
    }

    public long SourceIndex(int flat)
    {
        int i3 = flat % D3;
        int rest = flat / D3;
        int i2 = rest % D2;
        rest /= D2;
        int i1 = rest % D1;
        int i0 = rest / D1;
        return i0 * S0 + i1 * S1 + i2 * S2 + i3 * S3;
    }
}
