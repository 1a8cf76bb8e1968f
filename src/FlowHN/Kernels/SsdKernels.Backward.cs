using ILGPU;
using ILGPU.Algorithms;

namespace FlowHN.Kernels;

/// <summary>Scratch of an SSD backward, each sized by <see cref="SsdShape"/>.</summary>
internal struct SsdBackwardWork
{
    /// <summary>dt and the within-chunk cumulative sums (recomputed), <see cref="SsdShape.DecayLength"/>.</summary>
    public ArrayView<float> Decay;
    /// <summary>C_i . B_j per chunk (recomputed), <see cref="SsdShape.ScoresLength"/>.</summary>
    public ArrayView<float> Scores;
    /// <summary>dy_i . x_j per chunk and head, <see cref="SsdShape.PairDotsLength"/>.</summary>
    public ArrayView<float> PairDots;
    /// <summary>The state gradient arriving at the end of each chunk from later chunks, <see cref="SsdShape.ChunkStatesLength"/>.</summary>
    public ArrayView<float> Adjoint;
    /// <summary>w_t = sum_k B_t[k] dL/dh_t[., k], [Batch, Length, Heads, HeadDim].</summary>
    public ArrayView<float> W;
    /// <summary>Per (batch, time, head): x.w, dy.(y - D x), dy.x.</summary>
    public ArrayView<float> Rows;
    /// <summary>Per (batch, slot, head): the dtBias, dA and D gradient sums over time.</summary>
    public ArrayView<float> ParamPartial;
}

/// <summary>Where the backward accumulates (+=); DInitial is read only with an initial state.</summary>
internal struct SsdGradientViews
{
    public ArrayView<float> DX, DDt, DDtBias, DALog, DB, DC, DD, DInitial;
}

/// <summary>
/// The SSD backward, chunked like the forward. With g_t = dL/dh_t (a [HeadDim, States] state run backwards in
/// time, g_t = C_t dy_t^T + exp(a_{t+1}) g_{t+1}): the chunk adjoints R_c = sum_t exp(cs_t) C_t dy_t^T are scanned
/// from the last chunk to the first, giving the gradient G_c arriving at each chunk's end (and the initial state's
/// gradient); then w_t = B_t . g_t gives dx = dt w + D dy, dB and dC follow from the pair products dy_i . x_j and
/// the carried states, and the decay gradients use dL/dcs_t = dy_t . (y_t - D x_t) - dt_t x_t . w_t, summed from
/// the end of the sequence (dL/da_u = sum over t &gt;= u). Every sum runs in a fixed order; no atomics.
/// </summary>
internal static partial class SsdKernels
{
    /// <summary>Slots of the per-(batch, head) parameter partials.</summary>
    public const int ParamSlots = 3;
    /// <summary>Slots of the per-(batch, time, head) row sums.</summary>
    public const int RowSlots = 3;

    /// <summary>adjoint[b, c, h, i, k] = sum over t in chunk c of exp(cs_t) dy_t[i] C_t[k].</summary>
    public static void SsdChunkAdjoint(SsdShape s, SsdInputs p, ArrayView<float> dy, ArrayView<float> decay, ArrayView<float> adjoint)
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
            float sum = 0f;
            for (int t = t0; t < t1; t++)
                sum += XMath.Exp(decay[half + row + t]) * dy[(((long)b * length + t) * heads + h) * hd + i] *
                       p.C[(((long)b * length + t) * groups + g) * n + k];
            adjoint[at] = sum;
        }
    }

    /// <summary>
    /// The adjoint scan from the last chunk to the first, in place: adjoint[c] becomes the gradient arriving at
    /// the end of chunk c; dInitial += the gradient of the state before the first chunk (with an initial state).
    /// </summary>
    public static void SsdAdjointPassing(SsdShape s, ArrayView<float> decay, ArrayView<float> adjoint, ArrayView<float> dInitial)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        int size = s.StateSize, heads = s.Heads, chunks = s.Chunks, length = s.Length, units = s.Batch * heads * size;
        long half = (long)s.Batch * heads * length;
        for (int unit = first; unit < units; unit += stride)
        {
            int e = unit % size, bh = unit / size, b = bh / heads, h = bh % heads;
            float running = 0f;
            for (int c = chunks - 1; c >= 0; c--)
            {
                long at = (((long)b * chunks + c) * heads + h) * size + e;
                float own = adjoint[at];
                adjoint[at] = running;
                int last = XMath.Min(length, (c + 1) * s.Chunk) - 1;
                running = own + XMath.Exp(decay[half + (long)bh * length + last]) * running;
            }
            if (s.HasInitial != 0) dInitial[unit] += running;
        }
    }

    /// <summary>w[b, t, h, i] = (g_t B_t)[i]; dx += dt w + D dy. One thread per element of x.</summary>
    public static void SsdBackwardX(SsdShape s, SsdInputs p, ArrayView<float> dy, SsdBackwardWork work, ArrayView<float> dx)
    {
        long first = Grid.GlobalIndex.X, stride = (long)Grid.DimX * Group.DimX, count = s.XLength;
        int hd = s.HeadDim, heads = s.Heads, length = s.Length, q = s.Chunk, n = s.States, groups = s.Groups;
        long half = (long)s.Batch * heads * length;
        for (long at = first; at < count; at += stride)
        {
            int i = (int)(at % hd), h = (int)(at / hd % heads), t = (int)(at / hd / heads % length), b = (int)(at / hd / heads / length);
            int g = h / s.HeadsPerGroup, c = t / q, ti = t - c * q, t0 = c * q, t1 = XMath.Min(length, t0 + q);
            long row = ((long)b * heads + h) * length, scores = (((long)b * s.Chunks + c) * groups + g) * q * q;
            float a = -XMath.Exp(p.ALog[h]), segment = 0f, sum = 0f;
            for (int dst = t; dst < t1; dst++)
            {
                // segment = a_{t+1} + ... + a_dst, summed directly.
                sum += work.Scores[scores + (long)(dst - t0) * q + ti] * XMath.Exp(segment) *
                       dy[(((long)b * length + dst) * heads + h) * hd + i];
                if (dst + 1 < t1) segment += work.Decay[row + dst + 1] * a;
            }
            long stateAt = (((long)b * s.Chunks + c) * heads + h) * s.StateSize + (long)i * n;
            long bAt = (((long)b * length + t) * groups + g) * n;
            float carried = 0f;
            for (int k = 0; k < n; k++) carried += work.Adjoint[stateAt + k] * p.B[bAt + k];
            float w = sum + XMath.Exp(work.Decay[half + row + t1 - 1] - work.Decay[half + row + t]) * carried;
            work.W[at] = w;
            dx[at] += work.Decay[row + t] * w + p.D[h] * dy[at];
        }
    }

    /// <summary>rows[(b, t, h)] = (x.w, dy.(y - D x), dy.x) over the head dimension.</summary>
    public static void SsdRowSums(SsdShape s, SsdInputs p, ArrayView<float> dy, ArrayView<float> y, SsdBackwardWork work)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        int hd = s.HeadDim, heads = s.Heads, units = s.Batch * s.Length * heads;
        for (int unit = first; unit < units; unit += stride)
        {
            float d = p.D[unit % heads], xw = 0f, dyy = 0f, dyx = 0f;
            long at = (long)unit * hd;
            for (int i = 0; i < hd; i++)
            {
                float x = p.X[at + i], g = dy[at + i];
                xw += x * work.W[at + i];
                dyy += g * (y[at + i] - d * x);
                dyx += g * x;
            }
            long r = (long)unit * RowSlots;
            work.Rows[r] = xw;
            work.Rows[r + 1] = dyy;
            work.Rows[r + 2] = dyx;
        }
    }

    /// <summary>
    /// dt gradients, one thread per (batch, head) walking time backwards: da_t = sum over u &gt;= t of
    /// (dy_u.(y_u - D x_u) - dt_u x_u.w_u), d dt = x.w + A da, through the softplus; the per-(batch, head) sums
    /// of the dtBias, dA and D gradients go to the partials.
    /// </summary>
    public static void SsdDtScan(SsdShape s, SsdInputs p, SsdBackwardWork work, ArrayView<float> dDt)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        int heads = s.Heads, length = s.Length, units = s.Batch * heads;
        for (int unit = first; unit < units; unit += stride)
        {
            int h = unit % heads, b = unit / heads;
            float a = -XMath.Exp(p.ALog[h]), bias = p.DtBias[h], da = 0f, sumBias = 0f, sumA = 0f, sumD = 0f;
            for (int t = length - 1; t >= 0; t--)
            {
                long at = ((long)b * length + t) * heads + h, r = at * RowSlots;
                float dt = work.Decay[(long)unit * length + t], xw = work.Rows[r];
                da += work.Rows[r + 1] - dt * xw;
                float dPre = (xw + a * da) * Sigmoid(p.Dt[at] + bias);
                dDt[at] += dPre;
                sumBias += dPre;
                sumA += dt * da;
                sumD += work.Rows[r + 2];
            }
            long slot = (long)b * ParamSlots * heads + h;
            work.ParamPartial[slot] = sumBias;
            work.ParamPartial[slot + heads] = sumA;
            work.ParamPartial[slot + 2 * heads] = sumD;
        }
    }

    /// <summary>dtBias, A_log (dA times A) and D gradients += the partials summed over the batch, in batch order.</summary>
    public static void SsdParamFinish(SsdShape s, SsdInputs p, ArrayView<float> partial, SsdGradientViews grads)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX, heads = s.Heads;
        for (int h = first; h < heads; h += stride)
        {
            float bias = 0f, dA = 0f, d = 0f;
            for (int b = 0; b < s.Batch; b++)
            {
                long slot = (long)b * ParamSlots * heads + h;
                bias += partial[slot];
                dA += partial[slot + heads];
                d += partial[slot + 2 * heads];
            }
            grads.DDtBias[h] += bias;
            grads.DALog[h] += -XMath.Exp(p.ALog[h]) * dA;
            grads.DD[h] += d;
        }
    }

    /// <summary>
    /// dC[b, t, g, k] += sum over the group's heads of the intra-chunk sum dt_s exp(segment) (dy_t . x_s) B_s[k]
    /// and exp(cs_t) (dy_t H_c)[k], with H_c the state entering the chunk.
    /// </summary>
    public static void SsdBackwardC(SsdShape s, SsdInputs p, ArrayView<float> dy, ArrayView<float> states, SsdBackwardWork work,
        ArrayView<float> dC)
    {
        long first = Grid.GlobalIndex.X, stride = (long)Grid.DimX * Group.DimX, count = (long)s.Batch * s.Length * s.Groups * s.States;
        int n = s.States, groups = s.Groups, length = s.Length, q = s.Chunk, heads = s.Heads, hd = s.HeadDim, per = s.HeadsPerGroup;
        long half = (long)s.Batch * heads * length;
        for (long at = first; at < count; at += stride)
        {
            int k = (int)(at % n), g = (int)(at / n % groups), t = (int)(at / n / groups % length), b = (int)(at / n / groups / length);
            int c = t / q, ti = t - c * q, t0 = c * q;
            float total = 0f;
            for (int h = g * per; h < (g + 1) * per; h++)
            {
                long row = ((long)b * heads + h) * length, pairs = ((((long)b * s.Chunks + c) * heads + h) * q + ti) * q;
                float a = -XMath.Exp(p.ALog[h]), segment = 0f, sum = 0f;
                for (int j = ti; j >= 0; j--)
                {
                    int src = t0 + j;
                    sum += XMath.Exp(segment) * work.Decay[row + src] * work.PairDots[pairs + j] *
                           p.B[(((long)b * length + src) * groups + g) * n + k];
                    segment += work.Decay[row + src] * a;
                }
                long stateAt = (((long)b * s.Chunks + c) * heads + h) * s.StateSize + k, yAt = (((long)b * length + t) * heads + h) * hd;
                float carried = 0f;
                for (int i = 0; i < hd; i++) carried += dy[yAt + i] * states[stateAt + (long)i * n];
                total += sum + XMath.Exp(work.Decay[half + row + t]) * carried;
            }
            dC[at] += total;
        }
    }

    /// <summary>
    /// dB[b, s, g, k] += sum over the group's heads of dt_s times the intra-chunk sum exp(segment) (dy_t . x_s) C_t[k]
    /// over later t, and exp(cs_end - cs_s) (G_c^T x_s)[k], with G_c the gradient arriving at the chunk's end.
    /// </summary>
    public static void SsdBackwardB(SsdShape s, SsdInputs p, SsdBackwardWork work, ArrayView<float> dB)
    {
        long first = Grid.GlobalIndex.X, stride = (long)Grid.DimX * Group.DimX, count = (long)s.Batch * s.Length * s.Groups * s.States;
        int n = s.States, groups = s.Groups, length = s.Length, q = s.Chunk, heads = s.Heads, hd = s.HeadDim, per = s.HeadsPerGroup;
        long half = (long)s.Batch * heads * length;
        for (long at = first; at < count; at += stride)
        {
            int k = (int)(at % n), g = (int)(at / n % groups), t = (int)(at / n / groups % length), b = (int)(at / n / groups / length);
            int c = t / q, ti = t - c * q, t0 = c * q, t1 = XMath.Min(length, t0 + q);
            float total = 0f;
            for (int h = g * per; h < (g + 1) * per; h++)
            {
                long row = ((long)b * heads + h) * length, pairs = (((long)b * s.Chunks + c) * heads + h) * q * q;
                float a = -XMath.Exp(p.ALog[h]), segment = 0f, sum = 0f;
                for (int dst = t; dst < t1; dst++)
                {
                    sum += XMath.Exp(segment) * work.PairDots[pairs + (long)(dst - t0) * q + ti] *
                           p.C[(((long)b * length + dst) * groups + g) * n + k];
                    if (dst + 1 < t1) segment += work.Decay[row + dst + 1] * a;
                }
                long stateAt = (((long)b * s.Chunks + c) * heads + h) * s.StateSize + k, xAt = (((long)b * length + t) * heads + h) * hd;
                float carried = 0f;
                for (int i = 0; i < hd; i++) carried += work.Adjoint[stateAt + (long)i * n] * p.X[xAt + i];
                float decayToEnd = XMath.Exp(work.Decay[half + row + t1 - 1] - work.Decay[half + row + t]);
                total += work.Decay[row + t] * (sum + decayToEnd * carried);
            }
            dB[at] += total;
        }
    }
}
