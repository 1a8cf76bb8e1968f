using ILGPU;
using ILGPU.Algorithms;

namespace FlowHN.Kernels;

/// <summary>
/// Sizes of one causal convolution. x and y are [Batch, Length, Channels]; the weight is [Channels, Width]
/// (PyTorch's depthwise Conv1d weight [D, 1, W] squeezed); the optional state holds the Width - 1 inputs
/// before this sequence, [Batch, Width - 1, Channels]. Chunk (timesteps per thread) is launch geometry.
/// </summary>
internal readonly record struct CausalConvShape
{
    public int Batch { get; init; }
    public int Length { get; init; }
    public int Channels { get; init; }
    public int Width { get; init; }
    /// <summary>1 when a state gives the inputs before time 0 (else they are zero).</summary>
    public int HasState { get; init; }
    /// <summary>1 when SiLU follows the convolution (fused; the backward recomputes the pre-activation).</summary>
    public int Silu { get; init; }
    public int Chunk { get; init; }

    public int Chunks => (Length + Chunk - 1) / Chunk;
    /// <summary>Work items: one per (batch, chunk of time, channel), channel fastest so loads coalesce.</summary>
    public int Units => Batch * Chunks * Channels;
    /// <summary>Rows of the weight-gradient partials: one per (batch, chunk).</summary>
    public int PartialRows => Batch * Chunks;
}

/// <summary>
/// Depthwise causal conv1d over the sequence: y[b,t,d] = bias[d] + sum_j w[d,j] x[b, t-W+1+j, d], optionally
/// followed by SiLU. A thread owns one channel for one chunk of timesteps and slides a window of four
/// registers along time, so each input is loaded once (Mamba's convolution has width 4; narrower widths run
/// as width 4 with leading zero taps). Consecutive threads take consecutive channels, so on a GPU every load
/// of a warp is one contiguous segment of a [B, L, D] row; on the CPU accelerator a thread walks a long chunk
/// with no barrier at all.
/// <para>
/// Backward: per chunk the thread recomputes the pre-activations it needs (the window reaches three steps
/// past the chunk), accumulates dx (and the state's gradient for the first chunk) directly, and writes its
/// weight and bias gradient sums to a partial row per (batch, chunk); <see cref="WeightGradFinish"/> sums the
/// rows in a fixed order. No atomics, so gradients are bitwise reproducible.
/// </para>
/// </summary>
internal static class CausalConvKernels
{
    /// <summary>The register window: widths up to this run in one kernel.</summary>
    public const int MaxWidth = 4;
    /// <summary>Floats per partial row and channel: four (padded) taps and the bias.</summary>
    public const int PartialSlots = MaxWidth + 1;

    /// <summary>y = [silu](bias + causal depthwise convolution of x).</summary>
    public static void CausalConvForward(CausalConvShape s, ArrayView<float> x, ArrayView<float> weight, ArrayView<float> bias,
        ArrayView<float> state, ArrayView<float> y)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        int units = s.Units, channels = s.Channels, chunks = s.Chunks, length = s.Length;
        for (int unit = first; unit < units; unit += stride)
        {
            int d = unit % channels, chunk = unit / channels % chunks, b = unit / channels / chunks;
            int t0 = chunk * s.Chunk, t1 = XMath.Min(length, t0 + s.Chunk);
            var w = Taps.Load(s, weight, d);
            float bd = bias[d];
            float x0 = Input(s, x, state, b, t0 - 3, d), x1 = Input(s, x, state, b, t0 - 2, d), x2 = Input(s, x, state, b, t0 - 1, d);
            long at = ((long)b * length + t0) * channels + d;
            for (int t = t0; t < t1; t++, at += channels)
            {
                float x3 = x[at];
                float pre = bd + w.W0 * x0 + w.W1 * x1 + w.W2 * x2 + w.W3 * x3;
                y[at] = s.Silu != 0 ? pre / (1f + XMath.Exp(-pre)) : pre;
                x0 = x1;
                x1 = x2;
                x2 = x3;
            }
        }
    }

    /// <summary>
    /// dx += dL/dx (and dState += dL/dState when the shape has a state); partial rows receive the weight and
    /// bias gradient sums of each (batch, chunk), summed by <see cref="WeightGradFinish"/>.
    /// </summary>
    public static void CausalConvBackward(CausalConvShape s, ArrayView<float> x, ArrayView<float> weight, ArrayView<float> bias,
        ArrayView<float> state, ArrayView<float> dy, ArrayView<float> dx, ArrayView<float> dState, ArrayView<float> partial)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        int units = s.Units, channels = s.Channels, chunks = s.Chunks, length = s.Length, stateSteps = s.Width - 1;
        for (int unit = first; unit < units; unit += stride)
        {
            int d = unit % channels, chunk = unit / channels % chunks, b = unit / channels / chunks;
            int t0 = chunk * s.Chunk, t1 = XMath.Min(length, t0 + s.Chunk);
            var w = Taps.Load(s, weight, d);
            float bd = bias[d];
            float x0 = Input(s, x, state, b, t0 - 3, d), x1 = Input(s, x, state, b, t0 - 2, d), x2 = Input(s, x, state, b, t0 - 1, d);
            float g0 = 0f, g1 = 0f, g2 = 0f; // gradients of the pre-activations at t-3, t-2, t-1
            float dw0 = 0f, dw1 = 0f, dw2 = 0f, dw3 = 0f, dBias = 0f;
            // 64-bit offsets of step t and of dx's target t - 3, advanced by one row per step (no multiply per step).
            long at = ((long)b * length + t0) * channels + d, back = 3L * channels;
            // Step t computes the pre-activation gradient at t, then dx at t - 3, which needs those at t-3..t.
            for (int t = t0; t < t1 + 3; t++, at += channels)
            {
                float g3 = 0f;
                if (t < length)
                {
                    float x3 = x[at];
                    g3 = dy[at];
                    if (s.Silu != 0)
                    {
                        float pre = bd + w.W0 * x0 + w.W1 * x1 + w.W2 * x2 + w.W3 * x3;
                        float sig = 1f / (1f + XMath.Exp(-pre));
                        g3 *= sig * (1f + pre * (1f - sig));
                    }
                    if (t < t1)
                    {
                        dw0 += g3 * x0;
                        dw1 += g3 * x1;
                        dw2 += g3 * x2;
                        dw3 += g3 * x3;
                        dBias += g3;
                    }
                    x0 = x1;
                    x1 = x2;
                    x2 = x3;
                }
                int target = t - 3;
                float grad = w.W0 * g3 + w.W1 * g2 + w.W2 * g1 + w.W3 * g0;
                if (target >= t0) dx[at - back] += grad;
                else if (chunk == 0 && s.HasState != 0 && target >= -stateSteps)
                    dState[((long)b * stateSteps + stateSteps + target) * channels + d] += grad;
                g0 = g1;
                g1 = g2;
                g2 = g3;
            }
            long row = (long)(b * chunks + chunk) * PartialSlots * channels + d;
            partial[row] = dw0;
            partial[row + channels] = dw1;
            partial[row + 2 * channels] = dw2;
            partial[row + 3 * channels] = dw3;
            partial[row + 4 * channels] = dBias;
        }
    }

    /// <summary>dWeight[d, j] and dBias[d] += the sums of the partial rows (one thread per output, fixed order).</summary>
    public static void CausalConvWeightGradFinish(CausalConvShape s, ArrayView<float> partial, ArrayView<float> dWeight, ArrayView<float> dBias)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        int channels = s.Channels, width = s.Width, rows = s.PartialRows, n = (width + 1) * channels;
        long rowStride = (long)PartialSlots * channels;
        for (int i = first; i < n; i += stride)
        {
            int d = i % channels, j = i / channels; // j == width is the bias
            int slot = j == width ? MaxWidth : j + MaxWidth - width;
            float sum = 0f;
            long at = (long)slot * channels + d;
            for (int r = 0; r < rows; r++, at += rowStride) sum += partial[at];
            if (j == width) dBias[d] += sum;
            else dWeight[d * width + j] += sum;
        }
    }

    /// <summary>
    /// tail[b, i, d] = the input at time L - (W-1) + i (from the state when that time is negative): the state
    /// that continues the convolution in a following segment.
    /// </summary>
    public static void CausalConvTail(CausalConvShape s, ArrayView<float> x, ArrayView<float> state, ArrayView<float> tail)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        int channels = s.Channels, steps = s.Width - 1, n = s.Batch * steps * channels;
        for (int i = first; i < n; i += stride)
        {
            int d = i % channels, step = i / channels % steps, b = i / channels / steps;
            tail[i] = Input(s, x, state, b, s.Length - steps + step, d);
        }
    }

    /// <summary>The input at time t (negative times come from the state, or are zero).</summary>
    private static float Input(CausalConvShape s, ArrayView<float> x, ArrayView<float> state, int b, int t, int d)
    {
        if (t >= 0) return x[((long)b * s.Length + t) * s.Channels + d];
        int steps = s.Width - 1;
        if (s.HasState == 0 || t < -steps) return 0f;
        return state[((long)b * steps + steps + t) * s.Channels + d];
    }
}

/// <summary>One channel's taps right-aligned in a width-4 window: W3 multiplies the current input.</summary>
internal struct Taps
{
    public float W0, W1, W2, W3;

    public static Taps Load(CausalConvShape s, ArrayView<float> weight, int d)
    {
        int width = s.Width, pad = CausalConvKernels.MaxWidth - width;
        long at = (long)d * width - pad; // tap j of the window is weight column j - pad
        return new Taps
        {
            W0 = pad <= 0 ? weight[at] : 0f,
            W1 = pad <= 1 ? weight[at + 1] : 0f,
            W2 = pad <= 2 ? weight[at + 2] : 0f,
            W3 = weight[at + 3],
        };
    }
}
