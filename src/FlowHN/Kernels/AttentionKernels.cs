using ILGPU;
using ILGPU.Algorithms;

namespace FlowHN.Kernels;

/// <summary>
/// Sizes of one attention call. Layout [batch, length, heads, headDim] for q, k, v and the output (what a
/// linear projection produces, so no transposes); log-sum-exp and Delta are [batch, queryHeads, queryLength].
/// Query head h reads kv head h / (QueryHeads / KvHeads). Tile and LanesPerRow are launch geometry.
/// </summary>
internal readonly record struct AttentionShape
{
    public int Batch { get; init; }
    public int QueryLength { get; init; }
    public int KeyLength { get; init; }
    public int QueryHeads { get; init; }
    public int KvHeads { get; init; }
    public int HeadDim { get; init; }
    public float Scale { get; init; }
    /// <summary>Keys (forward, dQ) or queries (dK/dV) per tile of the online softmax.</summary>
    public int Tile { get; init; }
    /// <summary>Threads per row, a power of two dividing the group size (1 on the CPU accelerator).</summary>
    public int LanesPerRow { get; init; }

    public int QueryRows => Batch * QueryHeads * QueryLength;
    public int KeyRows => Batch * KvHeads * KeyLength;
}

/// <summary>The attention's inputs as views: q [B, Lq, Hq, D], k and v [B, Lk, Hkv, D], int positions [Lq] and [Lk].</summary>
internal struct AttentionInputs
{
    public ArrayView<float> Q, K, V;
    public ArrayView<int> QueryPositions, KeyPositions;
}

/// <summary>
/// The gradient buffers of a backward, each accumulated (+=): dQ like q, dK and dV like k. DK and DV invalid
/// (both) skips their kernel, for when neither k nor v needs a gradient.
/// </summary>
internal struct AttentionGradients
{
    public ArrayView<float> DQ, DK, DV;
}

/// <summary>
/// Flash-style causal attention with grouped KV heads and a mask by position: key j is visible to query i iff
/// kPos[j] &lt;= qPos[i] (positions are shared by the batch rows). No score matrix is ever stored.
/// <para>
/// Work split. A row is one query (forward, dQ) or one key of one kv head (dK/dV). A group handles
/// <c>Group.DimX / LanesPerRow</c> rows at a time and strides over all rows (<see cref="RowLoop"/>). Each row
/// owns a slice of dynamic shared memory holding its staged vectors, its accumulators and a double-buffered
/// strip of tile scores. Per tile, the row's lanes first split the <em>keys</em> (each lane computes whole dot
/// products, up to four keys per pass so every staged element is loaded once per four products; only one
/// reduction per tile is needed, for the running max), then split the <em>head dim</em> to accumulate scores
/// times value rows, four dims at a time, reading the other lanes' scores after one barrier. Double-buffering
/// the score strip means the next tile's writes never race this tile's reads, so a tile costs one barrier
/// (plus the max reduction in the forward). Tile loop bounds are made uniform across the group with a group
/// reduction, which also serves as the barrier after staging.
/// </para>
/// <para>
/// On a GPU a row gets up to a warp of lanes (about four head dims each); K/V rows are read straight from
/// global memory rather than staged, since the rows of a group are neighbouring queries of one head whose key
/// ranges differ (causal) and they hit the same cache lines anyway. On the CPU accelerator a row gets one
/// thread: no barrier or reduction executes at all and the loop bounds are per row.
/// </para>
/// <para>
/// The mask needs no ordering of positions, but the work does: each query walks keys up to its last visible
/// one and each key walks queries from its first viewer, so sorted positions (the normal case) skip all the
/// masked work of causal attention.
/// </para>
/// <para>
/// Backward (FlashAttention-2): P = exp(s - lse) is recomputed tile by tile from the saved log-sum-exp.
/// <see cref="BackwardQuery"/> computes Delta_i = dO_i . O_i and dQ; <see cref="BackwardKeyValue"/> then walks,
/// for each key, every query head of its kv group and every query that sees the key, and writes dK, dV once.
/// No atomics, so gradients are bitwise reproducible; all three gradients accumulate (+=).
/// A query that sees no key gets output 0 and lse = -inf; it is never visited in the backward, so its
/// gradients are 0.
/// </para>
/// </summary>
internal static class AttentionKernels
{
    /// <summary>Rows (keys or queries) a lane scores per pass of <see cref="Dot4"/>.</summary>
    private const int Block = 4;

    /// <summary>Shared floats per row of each kernel (odd, so neighbouring rows start in different banks).</summary>
    public static int ForwardRowFloats(int headDim, int tile) => 2 * headDim + 2 * tile + 1;
    public static int QueryGradRowFloats(int headDim, int tile) => 3 * headDim + 2 * tile + 1;
    public static int KeyValueGradRowFloats(int headDim, int tile) => 4 * headDim + 4 * tile + 1;

    /// <summary>o = softmax(scale q k^T, masked) v per query row; lse = log-sum-exp of the scaled scores.</summary>
    public static void AttentionForward(AttentionShape s, AttentionInputs inputs, ArrayView<float> o, ArrayView<float> lse)
    {
        ArrayView<float> q = inputs.Q, k = inputs.K, v = inputs.V;
        ArrayView<int> qPos = inputs.QueryPositions, kPos = inputs.KeyPositions;
        var shared = SharedMemory.GetDynamic<float>();
        int groupSize = Group.DimX;
        int lanes = s.LanesPerRow, d = s.HeadDim, tile = s.Tile, lq = s.QueryLength, lk = s.KeyLength, hq = s.QueryHeads;
        int headsPerKv = hq / s.KvHeads, rows = s.QueryRows;
        long qStride = (long)hq * d, kStride = (long)s.KvHeads * d;
        var loop = RowLoop.Of(lanes);
        int lane = loop.Lane;
        var scratch = shared.SubView(0, groupSize);
        int rowBase = groupSize + loop.Offset * ForwardRowFloats(d, tile);
        var qs = shared.SubView(rowBase, d);
        var acc = shared.SubView(rowBase + d, d);
        var scores = shared.SubView(rowBase + 2 * d, 2 * tile);

        for (int first = loop.Start; first < rows; first += loop.Step)
        {
            int row = first + loop.Offset;
            bool active = row < rows; // rows past the end still join the barriers
            int i = row % lq, h = row / lq % hq, b = row / lq / hq;
            long qAt = (b * (long)lq + i) * qStride + (long)h * d;
            long kvAt = b * (long)lk * kStride + (long)(h / headsPerKv) * d;
            int qp = active ? qPos[i] : 0;
            int end = active ? VisibleEnd(kPos, lk, qp) : 0;
            for (int e = lane; e < d; e += lanes)
            {
                qs[e] = active ? q[qAt + e] * s.Scale : 0f;
                acc[e] = 0f;
            }
            int tiles = GroupMax((end + tile - 1) / tile, scratch, lanes, groupSize);

            float m = float.NegativeInfinity, partialSum = 0f;
            for (int t0 = 0; t0 < tiles; t0++)
            {
                int j0 = t0 * tile, count = XMath.Min(tile, end - j0), buf = (t0 & 1) * tile;
                float localMax = float.NegativeInfinity;
                for (int t = lane; t < count; t += Block * lanes)
                {
                    int n = BlockSize(t, count, lanes);
                    var dots = Dot4(qs, k, kvAt + (j0 + t) * kStride, lanes * kStride, n, d);
                    for (int u = 0; u < n; u++)
                    {
                        int tu = t + u * lanes;
                        float score = kPos[j0 + tu] <= qp ? dots.Get(u) : float.NegativeInfinity;
                        scores[buf + tu] = score;
                        localMax = XMath.Max(localMax, score);
                    }
                }
                float newMax = XMath.Max(m, lanes == 1 ? localMax : GroupReduce.Max(localMax, scratch, lanes));
                bool none = newMax == float.NegativeInfinity; // nothing visible yet: keep exp away from -inf - -inf
                float rescale = none ? 1f : XMath.Exp(m - newMax);
                float tileSum = 0f;
                for (int t = lane; t < count; t += lanes)
                {
                    float p = none ? 0f : XMath.Exp(scores[buf + t] - newMax);
                    scores[buf + t] = p;
                    tileSum += p;
                }
                partialSum = partialSum * rescale + tileSum;
                m = newMax;
                if (lanes > 1) Group.Barrier(); // every lane's probabilities are visible to all lanes of the row
                AccumulateRows(acc, rescale, scores, buf, count, v, kvAt + j0 * kStride, kStride, lane, lanes, d);
            }
            float sum = lanes == 1 ? partialSum : GroupReduce.Sum(partialSum, scratch, lanes);
            if (!active) continue;
            float inverse = sum > 0f ? 1f / sum : 0f;
            for (int e = lane; e < d; e += lanes) o[qAt + e] = acc[e] * inverse;
            if (lane == 0) lse[row] = sum > 0f ? m + XMath.Log(sum) : float.NegativeInfinity;
        }
    }

    /// <summary>
    /// delta = rowsum(dO * O); dq += scale * sum_j P_ij (dO_i . v_j - delta_i) k_j. Writes delta for
    /// <see cref="BackwardKeyValue"/>, which must run after this kernel.
    /// </summary>
    public static void AttentionBackwardQuery(AttentionShape s, AttentionInputs inputs, ArrayView<float> o, ArrayView<float> dO,
        ArrayView<float> lse, ArrayView<float> delta, ArrayView<float> dq)
    {
        ArrayView<float> q = inputs.Q, k = inputs.K, v = inputs.V;
        ArrayView<int> qPos = inputs.QueryPositions, kPos = inputs.KeyPositions;
        var shared = SharedMemory.GetDynamic<float>();
        int groupSize = Group.DimX;
        int lanes = s.LanesPerRow, d = s.HeadDim, tile = s.Tile, lq = s.QueryLength, lk = s.KeyLength, hq = s.QueryHeads;
        int headsPerKv = hq / s.KvHeads, rows = s.QueryRows;
        long qStride = (long)hq * d, kStride = (long)s.KvHeads * d;
        var loop = RowLoop.Of(lanes);
        int lane = loop.Lane;
        var scratch = shared.SubView(0, groupSize);
        int rowBase = groupSize + loop.Offset * QueryGradRowFloats(d, tile);
        var qs = shared.SubView(rowBase, d);
        var dOs = shared.SubView(rowBase + d, d);
        var acc = shared.SubView(rowBase + 2 * d, d);
        var dScores = shared.SubView(rowBase + 3 * d, 2 * tile);

        for (int first = loop.Start; first < rows; first += loop.Step)
        {
            int row = first + loop.Offset;
            bool active = row < rows;
            int i = row % lq, h = row / lq % hq, b = row / lq / hq;
            long qAt = (b * (long)lq + i) * qStride + (long)h * d;
            long kvAt = b * (long)lk * kStride + (long)(h / headsPerKv) * d;
            float partial = 0f;
            for (int e = lane; e < d && active; e += lanes)
            {
                float g = dO[qAt + e];
                partial += g * o[qAt + e];
                qs[e] = q[qAt + e] * s.Scale;
                dOs[e] = g;
                acc[e] = 0f;
            }
            float rowDelta = lanes == 1 ? partial : GroupReduce.Sum(partial, scratch, lanes);
            if (active && lane == 0) delta[row] = rowDelta;
            int qp = active ? qPos[i] : 0;
            int end = active ? VisibleEnd(kPos, lk, qp) : 0;
            float rowLse = end > 0 ? lse[row] : 0f;
            int tiles = GroupMax((end + tile - 1) / tile, scratch, lanes, groupSize);

            for (int t0 = 0; t0 < tiles; t0++)
            {
                int j0 = t0 * tile, count = XMath.Min(tile, end - j0), buf = (t0 & 1) * tile;
                for (int t = lane; t < count; t += Block * lanes)
                {
                    int n = BlockSize(t, count, lanes);
                    long at = kvAt + (j0 + t) * kStride, step = lanes * kStride;
                    var scoreDots = Dot4(qs, k, at, step, n, d);
                    var valueDots = Dot4(dOs, v, at, step, n, d);
                    for (int u = 0; u < n; u++)
                    {
                        int tu = t + u * lanes;
                        float p = kPos[j0 + tu] <= qp ? XMath.Exp(scoreDots.Get(u) - rowLse) : 0f;
                        dScores[buf + tu] = p * (valueDots.Get(u) - rowDelta);
                    }
                }
                if (lanes > 1) Group.Barrier();
                AccumulateRows(acc, 1f, dScores, buf, count, k, kvAt + j0 * kStride, kStride, lane, lanes, d);
            }
            if (!active) continue;
            for (int e = lane; e < d; e += lanes) dq[qAt + e] += s.Scale * acc[e];
        }
    }

    /// <summary>
    /// Per key j of kv head g: dv += sum P_ij dO_i and dk += scale * sum P_ij (dO_i . v_j - delta_i) q_i over
    /// every query head h of the group and every query i that sees the key.
    /// </summary>
    public static void AttentionBackwardKeyValue(AttentionShape s, AttentionInputs inputs, ArrayView<float> dO, ArrayView<float> lse,
        ArrayView<float> delta, ArrayView<float> dk, ArrayView<float> dv)
    {
        ArrayView<float> q = inputs.Q, k = inputs.K, v = inputs.V;
        ArrayView<int> qPos = inputs.QueryPositions, kPos = inputs.KeyPositions;
        var shared = SharedMemory.GetDynamic<float>();
        int groupSize = Group.DimX;
        int lanes = s.LanesPerRow, d = s.HeadDim, tile = s.Tile, lq = s.QueryLength, lk = s.KeyLength, hq = s.QueryHeads;
        int hkv = s.KvHeads, headsPerKv = hq / hkv, rows = s.KeyRows;
        long qStride = (long)hq * d, kStride = (long)hkv * d;
        var loop = RowLoop.Of(lanes);
        int lane = loop.Lane;
        var scratch = shared.SubView(0, groupSize);
        int rowBase = groupSize + loop.Offset * KeyValueGradRowFloats(d, tile);
        var ks = shared.SubView(rowBase, d);
        var vs = shared.SubView(rowBase + d, d);
        var accK = shared.SubView(rowBase + 2 * d, d);
        var accV = shared.SubView(rowBase + 3 * d, d);
        var probs = shared.SubView(rowBase + 4 * d, 2 * tile);
        var dScores = shared.SubView(rowBase + 4 * d + 2 * tile, 2 * tile);
        int queryTiles = (lq + tile - 1) / tile;

        for (int first = loop.Start; first < rows; first += loop.Step)
        {
            int row = first + loop.Offset;
            bool active = row < rows;
            // Rows past the end still walk the query tiles (for the barriers): give them a real row to read.
            int safeRow = active ? row : 0;
            int j = safeRow % lk, g = safeRow / lk % hkv, b = safeRow / lk / hkv;
            long kAt = (b * (long)lk + j) * kStride + (long)g * d;
            for (int e = lane; e < d && active; e += lanes)
            {
                ks[e] = k[kAt + e] * s.Scale;
                vs[e] = v[kAt + e];
                accK[e] = 0f;
                accV[e] = 0f;
            }
            int kp = active ? kPos[j] : 0;
            int start = active ? FirstSeeing(qPos, lq, kp) : lq;
            int firstTile = -GroupMax(-(start / tile), scratch, lanes, groupSize);

            int tilesDone = 0; // consecutive tiles, across heads too, alternate score buffers
            for (int hh = 0; hh < headsPerKv; hh++)
            {
                int h = g * headsPerKv + hh;
                long qHead = b * (long)lq * qStride + (long)h * d;
                long statsHead = (b * (long)hq + h) * lq;
                for (int t0 = firstTile; t0 < queryTiles; t0++)
                {
                    int i0 = t0 * tile, count = XMath.Min(tile, lq - i0), from = XMath.Max(start - i0, 0);
                    int buf = (tilesDone++ & 1) * tile;
                    for (int t = lane; t < count; t += Block * lanes)
                    {
                        int n = BlockSize(t, count, lanes);
                        long at = qHead + (i0 + t) * qStride, step = lanes * qStride;
                        var scoreDots = Dot4(ks, q, at, step, n, d);
                        var valueDots = Dot4(vs, dO, at, step, n, d);
                        for (int u = 0; u < n; u++)
                        {
                            int tu = t + u * lanes, i = i0 + tu;
                            bool visible = tu >= from && qPos[i] >= kp;
                            float p = visible ? XMath.Exp(scoreDots.Get(u) - lse[statsHead + i]) : 0f;
                            probs[buf + tu] = p;
                            dScores[buf + tu] = visible ? p * (valueDots.Get(u) - delta[statsHead + i]) : 0f;
                        }
                    }
                    if (lanes > 1) Group.Barrier();
                    long rowsAt = qHead + (i0 + from) * qStride;
                    int visibleCount = count - from;
                    AccumulateRows(accV, 1f, probs, buf + from, visibleCount, dO, rowsAt, qStride, lane, lanes, d);
                    AccumulateRows(accK, 1f, dScores, buf + from, visibleCount, q, rowsAt, qStride, lane, lanes, d);
                }
            }
            if (!active) continue;
            for (int e = lane; e < d; e += lanes)
            {
                dk[kAt + e] += s.Scale * accK[e];
                dv[kAt + e] += accV[e];
            }
        }
    }

    /// <summary>positions[i] = first + i (the positions of ordinary causal attention).</summary>
    public static void AttentionPositions(int n, ArrayView<int> positions, int first)
    {
        int start = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        for (int i = start; i < n; i += stride) positions[i] = first + i;
    }

    /// <summary>One past the last key visible at query position qp (keys after it are all invisible).</summary>
    private static int VisibleEnd(ArrayView<int> kPos, int lk, int qp)
    {
        int end = lk;
        while (end > 0 && kPos[end - 1] > qp) end--;
        return end;
    }

    /// <summary>The first query that sees key position kp (queries before it are all blind to the key).</summary>
    private static int FirstSeeing(ArrayView<int> qPos, int lq, int kp)
    {
        int start = 0;
        while (start < lq && qPos[start] < kp) start++;
        return start;
    }

    /// <summary>The group-wide max of a per-row count (uniform loop bounds for the barriers); a no-op per thread on one lane.</summary>
    private static int GroupMax(int value, ArrayView<float> scratch, int lanes, int groupSize) =>
        lanes == 1 ? value : (int)GroupReduce.Max(value, scratch, groupSize);

    /// <summary>
    /// acc[e] = acc[e] * rescale + sum_t weights[buf + t] * rows[at + t * stride + e] over the lane's dims, four
    /// dims at a time so four independent sums are in flight and each weight is loaded once per four dims.
    /// </summary>
    private static void AccumulateRows(ArrayView<float> acc, float rescale, ArrayView<float> weights, int buf, int count,
        ArrayView<float> rows, long at, long stride, int lane, int lanes, int d)
    {
        int e = lane;
        for (; e + 3 * lanes < d; e += 4 * lanes)
        {
            float a0 = acc[e] * rescale, a1 = acc[e + lanes] * rescale;
            float a2 = acc[e + 2 * lanes] * rescale, a3 = acc[e + 3 * lanes] * rescale;
            long r = at + e;
            for (int t = 0; t < count; t++, r += stride)
            {
                float w = weights[buf + t];
                a0 += w * rows[r];
                a1 += w * rows[r + lanes];
                a2 += w * rows[r + 2 * lanes];
                a3 += w * rows[r + 3 * lanes];
            }
            acc[e] = a0;
            acc[e + lanes] = a1;
            acc[e + 2 * lanes] = a2;
            acc[e + 3 * lanes] = a3;
        }
        for (; e < d; e += lanes)
        {
            float a = acc[e] * rescale;
            long r = at + e;
            for (int t = 0; t < count; t++, r += stride) a += weights[buf + t] * rows[r];
            acc[e] = a;
        }
    }

    /// <summary>How many of the lane's next <see cref="Block"/> rows (t, t + lanes, ...) lie below count.</summary>
    private static int BlockSize(int t, int count, int lanes) => XMath.Min(Block, (count - t + lanes - 1) / lanes);

    /// <summary>
    /// a . b[at + u * step ..] for u &lt; n (n &lt;= 4) in one pass, so each element of a is loaded once for up
    /// to four products (loads dominate on the CPU accelerator). Unused slots re-read row 0 and are ignored.
    /// </summary>
    private static Float4 Dot4(ArrayView<float> a, ArrayView<float> b, long at, long step, int n, int d)
    {
        long at1 = n > 1 ? at + step : at, at2 = n > 2 ? at + 2 * step : at, at3 = n > 3 ? at + 3 * step : at;
        Float4 r = default;
        for (int e = 0; e < d; e++)
        {
            float x = a[e];
            r.X += x * b[at + e];
            r.Y += x * b[at1 + e];
            r.Z += x * b[at2 + e];
            r.W += x * b[at3 + e];
        }
        return r;
    }
}

/// <summary>Four floats (results of <c>Dot4</c>).</summary>
internal struct Float4
{
    public float X, Y, Z, W;

    public readonly float Get(int u) => u == 0 ? X : u == 1 ? Y : u == 2 ? Z : W;
}
