using ILGPU;
using ILGPU.Algorithms;

namespace FlowHN.Kernels;

/// <summary>A reduction operator usable inside kernels (struct, so ILGPU specialises it at compile time).</summary>
public interface IReduction
{
    float Identity { get; }
    float Map(float x);
    float Combine(float a, float b);
}

public struct SumReduction : IReduction
{
    public float Identity => 0f;
    public float Map(float x) => x;
    public float Combine(float a, float b) => a + b;
}

public struct SumOfSquaresReduction : IReduction
{
    public float Identity => 0f;
    public float Map(float x) => x * x;
    public float Combine(float a, float b) => a + b;
}

public struct MaxReduction : IReduction
{
    public float Identity => float.NegativeInfinity;
    public float Map(float x) => x;
    public float Combine(float a, float b) => XMath.Max(a, b);
}

/// <summary>
/// Group-wide reductions through shared memory. A fixed tree order keeps results bitwise reproducible. The
/// group size must be a power of two; <paramref name="scratch"/> needs one float per thread.
/// </summary>
internal static class GroupReduce
{
    public static float Reduce<TReduction>(float value, ArrayView<float> scratch)
        where TReduction : struct, IReduction
    {
        int t = Group.IdxX;
        scratch[t] = value;
        Group.Barrier();
        for (int stride = Group.DimX / 2; stride > 0; stride >>= 1)
        {
            if (t < stride) scratch[t] = default(TReduction).Combine(scratch[t], scratch[t + stride]);
            Group.Barrier();
        }
        float result = scratch[0];
        Group.Barrier(); // scratch is reused by the caller's next reduction
        return result;
    }

    public static float Sum(float value, ArrayView<float> scratch) => Reduce<SumReduction>(value, scratch);

    public static float Max(float value, ArrayView<float> scratch) => Reduce<MaxReduction>(value, scratch);
}
