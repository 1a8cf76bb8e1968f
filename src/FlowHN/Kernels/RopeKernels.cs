using FlowHN.Runtime;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

/// <summary>Sizes of a rotary embedding over [batch, length, heads, headDim] with the half-split pairing.</summary>
internal readonly record struct RopeShape
{
    public int Pairs { get; init; }
    public int Length { get; init; }
    public int Heads { get; init; }
    public int HalfDim { get; init; }
    /// <summary>base^(-2/headDim): the frequency of pair i is its i-th power.</summary>
    public double FrequencyRatio { get; init; }
}

/// <summary>
/// Rotary position embedding: dims i and i + D/2 of every head are rotated by the angle pos * base^(-2i/D).
/// The backward is the rotation by the negative angle, so one kernel serves both directions.
/// The angle is formed and reduced to [-pi, pi] in float64 (the frequency as a power of a float64 ratio, by
/// squaring: multiplications only), so a large position costs no accuracy; only sine and cosine run in float32,
/// and on the reduced angle, where GPU approximations are accurate.
/// </summary>
internal static class RopeKernels
{
    private const double TwoPi = 6.28318530717958647692;

    /// <summary>
    /// y = R(direction * angle) x per pair; <paramref name="accumulate"/> = 1 adds to y instead. x and y may
    /// be the same view (each thread reads its pair before writing it).
    /// </summary>
    public static void RopeRotate(RopeShape s, ArrayView<float> x, ArrayView<float> y, ArrayView<int> positions, float direction,
        int accumulate)
    {
        int start = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        int half = s.HalfDim;
        for (int p = start; p < s.Pairs; p += stride)
        {
            int i = p % half;
            int headRow = p / half;              // (token, head)
            int position = positions[headRow / s.Heads % s.Length];
            double frequency = 1.0, power = s.FrequencyRatio;
            for (int bits = i; bits > 0; bits >>= 1)
            {
                if ((bits & 1) != 0) frequency *= power;
                power *= power;
            }
            double angle = position * frequency;
            float reduced = (float)(angle - TwoPi * XMath.Floor(angle * (1.0 / TwoPi) + 0.5)) * direction;
            float cos = XMath.Cos(reduced), sin = XMath.Sin(reduced);
            long a = (long)headRow * 2 * half + i, b = a + half;
            float x1 = x[a], x2 = x[b];
            float y1 = x1 * cos - x2 * sin, y2 = x1 * sin + x2 * cos;
            y[a] = accumulate != 0 ? y[a] + y1 : y1;
            y[b] = accumulate != 0 ? y[b] + y2 : y2;
        }
    }
}

/// <summary>Typed entry points for <see cref="RopeKernels"/>.</summary>
internal sealed class RopeLauncher : KernelFamily
{
    private readonly Action<AcceleratorStream, KernelConfig, RopeShape, ArrayView<float>, ArrayView<float>, ArrayView<int>, float, int> rotate;

    public RopeLauncher(ComputeDevice device, IScratchMemory scratch) : base(device, scratch)
    {
        rotate = Load<RopeShape, ArrayView<float>, ArrayView<float>, ArrayView<int>, float, int>(RopeKernels.RopeRotate);
    }

    public static RopeShape Shape(int batch, int length, int heads, int headDim, float theta = 10000f)
    {
        if (headDim % 2 != 0) throw new ArgumentException($"RoPE needs an even head dim, got {headDim}.");
        long pairs = (long)batch * length * heads * (headDim / 2);
        return new RopeShape
        {
            Pairs = Launch.CheckedInt(pairs, "RoPE input"), Length = length, Heads = heads, HalfDim = headDim / 2,
            FrequencyRatio = Math.Pow(theta, -2.0 / headDim),
        };
    }

    /// <summary>y = rope(x) with positions [length]; y may be x (in place).</summary>
    public void Forward(RopeShape s, ArrayView<float> x, ArrayView<float> y, ArrayView<int> positions) =>
        Run(s, x, y, positions, 1f, false);

    /// <summary>dx += rope^-1(dy): the rotation by the negative angle.</summary>
    public void Backward(RopeShape s, ArrayView<float> dy, ArrayView<float> dx, ArrayView<int> positions) =>
        Run(s, dy, dx, positions, -1f, true);

    private void Run(RopeShape s, ArrayView<float> x, ArrayView<float> y, ArrayView<int> positions, float direction,
        bool accumulate)
    {
        Counters.Kernel();
        rotate(Stream, Launch.Grid1D(Device, s.Pairs), s, x, y, positions, direction, accumulate ? 1 : 0);
    }
}
