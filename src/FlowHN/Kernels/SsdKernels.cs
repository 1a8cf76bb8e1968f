using ILGPU;
using ILGPU.Algorithms;

namespace FlowHN.Kernels;

/// <summary>
/// Sizes of one Mamba-2 SSD scan. x and y are [Batch, Length, Heads, HeadDim]; dt [Batch, Length, Heads]; B and C
/// [Batch, Length, Groups, States]; dtBias, A_log and D [Heads]; the initial and final states [Batch, Heads,
/// HeadDim, States]. Chunk is the SSD chunk length Q.
/// </summary>
internal readonly record struct SsdShape
{
    public int Batch { get; init; }
    public int Length { get; init; }
    public int Heads { get; init; }
    public int HeadDim { get; init; }
    public int Groups { get; init; }
    public int States { get; init; }
    public int Chunk { get; init; }
    /// <summary>1 when an initial state is given (else the scan starts from zero).</summary>
    public int HasInitial { get; init; }

    public int Chunks => (Length + Chunk - 1) / Chunk;
    public int HeadsPerGroup => Heads / Groups;
    /// <summary>Floats of one state, HeadDim x States.</summary>
    public int StateSize => HeadDim * States;
    /// <summary>[Batch, Heads, Length] twice: dt after the softplus, then the within-chunk cumulative sum of dt A.</summary>
    public long DecayLength => 2L * Batch * Heads * Length;
    /// <summary>[Batch, Chunks, Groups, Chunk, Chunk]: C_i . B_j within each chunk (j at most i).</summary>
    public long ScoresLength => (long)Batch * Chunks * Groups * Chunk * Chunk;
    /// <summary>[Batch, Chunks, Heads, HeadDim, States]: one state per chunk.</summary>
    public long ChunkStatesLength => (long)Batch * Chunks * Heads * StateSize;
    /// <summary>[Batch, Chunks, Heads, Chunk, Chunk]: dy_i . x_j within each chunk (backward).</summary>
    public long PairDotsLength => (long)Batch * Chunks * Heads * Chunk * Chunk;
    public long XLength => (long)Batch * Length * Heads * HeadDim;
}

/// <summary>The scan's inputs as views (Initial is a dummy view when the shape has none).</summary>
internal struct SsdInputs
{
    public ArrayView<float> X, Dt, DtBias, ALog, B, C, D, Initial;
}

/// <summary>
/// Mamba-2's state-space-dual scan, chunked (Dao and Gu 2024, "Transformers are SSMs", section 6). Per (batch,
/// head), with a_t = dt_t A and cs_t the cumulative sum of a within a chunk:
/// <list type="number">
/// <item>intra-chunk output y_t = sum_{s &lt;= t in the chunk} (C_t . B_s) exp(a_{s+1} + ... + a_t) dt_s x_s,
/// the masked "attention" form (C B^T o L)(dt x);</item>
/// <item>chunk states S_c = sum_{s in c} exp(cs_end - cs_s) dt_s x_s B_s^T;</item>
/// <item>a scan over chunks, the only sequential part (Length / Chunk steps): H_{c+1} = exp(cs_end_c) H_c + S_c,
/// H_0 = the initial state, the last one the final state;</item>
/// <item>the inter-chunk output y_t += exp(cs_t) H_c C_t, and the skip D x_t.</item>
/// </list>
/// The decay of a segment is summed directly (a_{s+1} + ... + a_t, added step by step as the inner loop walks
/// back from t), never as a ratio of exponentials, so it stays exact in log space however long the chunk.
/// The chunk products are computed inside these kernels (one output element per thread, each summing over the
/// chunk, d_state or the head dimension in a fixed order): simple, deterministic and the same code on the CPU
/// accelerator; routing them through the batched GEMM is the faster path left for later.
/// </summary>
internal static partial class SsdKernels
{
    /// <summary>
    /// decay[0, B*H*L) = dt = softplus(dtRaw + dtBias); decay[B*H*L, 2 B*H*L) = the within-chunk inclusive cumulative
    /// sum of dt A, both [Batch, Heads, Length]. One thread per (batch, head, chunk).
    /// </summary>
    public static void SsdDecay(SsdShape s, SsdInputs p, ArrayView<float> decay)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        int heads = s.Heads, chunks = s.Chunks, length = s.Length, units = s.Batch * heads * chunks;
        long half = (long)s.Batch * heads * length;
        for (int unit = first; unit < units; unit += stride)
        {
            int c = unit % chunks, bh = unit / chunks, h = bh % heads, b = bh / heads;
            float a = -XMath.Exp(p.ALog[h]), bias = p.DtBias[h], sum = 0f;
            int t1 = XMath.Min(length, (c + 1) * s.Chunk);
            for (int t = c * s.Chunk; t < t1; t++)
            {
                float dt = Softplus(p.Dt[((long)b * length + t) * heads + h] + bias);
                sum += dt * a;
                long at = (long)bh * length + t;
                decay[at] = dt;
                decay[half + at] = sum;
            }
        }
    }

    /// <summary>
    /// dots[b, c, r, i, j] = left_i . right_j for j &lt;= i inside chunk c (zero elsewhere), where left and right are
    /// [batch, length, rows, width]: the forward's C . B scores (rows = groups, width = d_state) and the backward's
    /// dy . x (rows = heads, width = head_dim).
    /// </summary>
    public static void SsdChunkPairDots(SsdShape s, int rows, int width, ArrayView<float> left, ArrayView<float> right,
        ArrayView<float> dots)
    {
        int q = s.Chunk, chunks = s.Chunks, length = s.Length;
        long first = Grid.GlobalIndex.X, stride = (long)Grid.DimX * Group.DimX, count = (long)s.Batch * chunks * rows * q * q;
        for (long at = first; at < count; at += stride)
        {
            int j = (int)(at % q), i = (int)(at / q % q), r = (int)(at / q / q % rows), c = (int)(at / q / q / rows % chunks);
            int b = (int)(at / q / q / rows / chunks);
            int ti = c * q + i, tj = c * q + j;
            float dot = 0f;
            if (j <= i && ti < length)
            {
                long li = (((long)b * length + ti) * rows + r) * width, rj = (((long)b * length + tj) * rows + r) * width;
                for (int k = 0; k < width; k++) dot += left[li + k] * right[rj + k];
            }
            dots[at] = dot;
        }
    }

    /// <summary>states[b, c, h, i, k] = sum over s in chunk c of exp(cs_end - cs_s) dt_s x_s[i] B_s[k].</summary>
    public static void SsdChunkStates(SsdShape s, SsdInputs p, ArrayView<float> decay, ArrayView<float> states)
    {
        long first = Grid.GlobalIndex.X, stride = (long)Grid.DimX * Group.DimX, count = s.ChunkStatesLength;
        int n = s.States, hd = s.HeadDim, heads = s.Heads, chunks = s.Chunks, length = s.Length, groups = s.Groups;
        long half = (long)s.Batch * heads * length;
        for (long at = first; at < count; at += stride)
        {
            int k = (int)(at % n), i = (int)(at / n % hd), h = (int)(at / n / hd % heads), c = (int)(at / n / hd / heads % chunks);
            int b = (int)(at / n / hd / heads / chunks), g = h / s.HeadsPerGroup;
            int t0 = c * s.Chunk, t1 = XMath.Min(length, t0 + s.Chunk);
            long row = ((long)b * heads + h) * length;
            float end = decay[half + row + t1 - 1], sum = 0f;
            for (int t = t0; t < t1; t++)
            {
                float w = XMath.Exp(end - decay[half + row + t]) * decay[row + t];
                sum += w * p.X[(((long)b * length + t) * heads + h) * hd + i] * p.B[(((long)b * length + t) * groups + g) * n + k];
            }
            states[at] = sum;
        }
    }

    /// <summary>
    /// The scan over chunks, in place: states[c] (chunk c's own contribution) becomes the state entering chunk c;
    /// final = the state after the last chunk (when <paramref name="writeFinal"/> is 1). One thread per (batch,
    /// head, state element).
    /// </summary>
    public static void SsdStatePassing(SsdShape s, SsdInputs p, ArrayView<float> decay, ArrayView<float> states,
        ArrayView<float> final, int writeFinal)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        int size = s.StateSize, heads = s.Heads, chunks = s.Chunks, length = s.Length, units = s.Batch * heads * size;
        long half = (long)s.Batch * heads * length;
        for (int unit = first; unit < units; unit += stride)
        {
            int e = unit % size, bh = unit / size, b = bh / heads, h = bh % heads;
            float running = s.HasInitial != 0 ? p.Initial[unit] : 0f;
            for (int c = 0; c < chunks; c++)
            {
                long at = (((long)b * chunks + c) * heads + h) * size + e;
                float own = states[at];
                states[at] = running;
                int last = XMath.Min(length, (c + 1) * s.Chunk) - 1;
                running = XMath.Exp(decay[half + (long)bh * length + last]) * running + own;
            }
            if (writeFinal != 0) final[unit] = running;
        }
    }

    /// <summary>
    /// y[b, t, h, i] = the intra-chunk sum, plus exp(cs_t) (H_c C_t)[i], plus D x. One thread per output element;
    /// states holds the state entering each chunk.
    /// </summary>
    public static void SsdOutput(SsdShape s, SsdInputs p, ArrayView<float> decay, ArrayView<float> scores,
        ArrayView<float> states, ArrayView<float> y)
    {
        long first = Grid.GlobalIndex.X, stride = (long)Grid.DimX * Group.DimX, count = s.XLength;
        int hd = s.HeadDim, heads = s.Heads, length = s.Length, q = s.Chunk, n = s.States, groups = s.Groups;
        long half = (long)s.Batch * heads * length;
        for (long at = first; at < count; at += stride)
        {
            int i = (int)(at % hd), h = (int)(at / hd % heads), t = (int)(at / hd / heads % length), b = (int)(at / hd / heads / length);
            int g = h / s.HeadsPerGroup, c = t / q, ti = t - c * q, t0 = c * q;
            long row = ((long)b * heads + h) * length, scoreRow = ((((long)b * s.Chunks + c) * groups + g) * q + ti) * q;
            float a = -XMath.Exp(p.ALog[h]), segment = 0f, sum = 0f;
            for (int j = ti; j >= 0; j--)
            {
                int src = t0 + j;
                // segment = a_{src+1} + ... + a_t, summed directly.
                sum += scores[scoreRow + j] * XMath.Exp(segment) * decay[row + src] * p.X[(((long)b * length + src) * heads + h) * hd + i];
                segment += decay[row + src] * a;
            }
            long stateAt = (((long)b * s.Chunks + c) * heads + h) * s.StateSize + (long)i * n;
            long cAt = (((long)b * length + t) * groups + g) * n;
            float carried = 0f;
            for (int k = 0; k < n; k++) carried += states[stateAt + k] * p.C[cAt + k];
            y[at] = sum + XMath.Exp(decay[half + row + t]) * carried + p.D[h] * p.X[at];
        }
    }

    private static float Softplus(float x) => default(SoftplusFunction).Forward(x);

    private static float Sigmoid(float x) => 1f / (1f + XMath.Exp(-x));
}
