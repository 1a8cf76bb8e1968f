using ILGPU;
using ILGPU.Algorithms;

namespace FlowHN.Kernels;

/// <summary>A reduction operator usable inside kernels (struct, so ILGPU specialises it at compile time).</summary>
internal interface IReduction
{
    float Identity { get; }
    float Map(float x);
    float Combine(float a, float b);
}

internal struct SumReduction : IReduction
{
    public float Identity => 0f;
    public float Map(float x) => x;
    public float Combine(float a, float b) => a + b;
}

internal struct SumOfSquaresReduction : IReduction
{
    public float Identity => 0f;
    public float Map(float x) => x * x;
    public float Combine(float a, float b) => a + b;
}

internal struct MaxReduction : IReduction
{
    public float Identity => float.NegativeInfinity;
    public float Map(float x) => x;
    public float Combine(float a, float b) => XMath.Max(a, b);
}

/// <summary>
/// Reductions across the threads of a group, or across segments of <c>width</c> consecutive threads (one
/// segment per row when a group handles several rows). A fixed tree order keeps results bitwise reproducible.
/// Width is a power of two dividing the group size; width 1 needs no barrier at all, which matters on the CPU
/// accelerator where every barrier is an OS-thread barrier. <paramref name="scratch"/> needs one float per thread.
/// Every thread of the group must call it (barriers), active or not.
/// </summary>
internal static class GroupReduce
{
    public static float Reduce<TReduction>(float value, ArrayView<float> scratch, int width)
        where TReduction : struct, IReduction
    {
        if (width == 1) return value;
        int t = Group.IdxX;
        int segmentLane = t & (width - 1);
        scratch[t] = value;
        Group.Barrier();
        for (int stride = width / 2; stride > 0; stride >>= 1)
        {
            if (segmentLane < stride) scratch[t] = default(TReduction).Combine(scratch[t], scratch[t + stride]);
            Group.Barrier();
        }
        float result = scratch[t - segmentLane];
        Group.Barrier(); // scratch is reused by the caller's next reduction
        return result;
    }

    public static float Sum(float value, ArrayView<float> scratch, int width) => Reduce<SumReduction>(value, scratch, width);

    public static float Max(float value, ArrayView<float> scratch, int width) => Reduce<MaxReduction>(value, scratch, width);
}

/// <summary>
/// How a group walks over rows: it handles <c>Group.DimX / lanesPerRow</c> rows at a time, each by
/// <c>lanesPerRow</c> threads (a whole group per row on a GPU, one thread per row on the CPU accelerator), and
/// the grid strides over all rows. The loop bounds are the same for every thread of a group, so reductions with
/// barriers inside the loop are safe; threads past the last row run with <c>active</c> false.
/// Use: <c>for (int b = loop.Start; b &lt; rows; b += loop.Step) { int row = b + loop.Offset; ... }</c>
/// </summary>
internal struct RowLoop
{
    public int Lane;
    public int Offset;
    public int Start;
    public int Step;

    public static RowLoop Of(int lanesPerRow)
    {
        int t = Group.IdxX;
        int rowsPerGroup = Group.DimX / lanesPerRow;
        return new RowLoop
        {
            Lane = t & (lanesPerRow - 1),
            Offset = t / lanesPerRow,
            Start = Grid.IdxX * rowsPerGroup,
            Step = Grid.DimX * rowsPerGroup,
        };
    }
}
