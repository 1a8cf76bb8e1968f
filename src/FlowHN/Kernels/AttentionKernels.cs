using ILGPU;
using ILGPU.Algorithms;

namespace FlowHN.Kernels;

/// <summary>
/// Sizes of one attention call. Layout [batch, length, heads, headDim] for q, k, v and the output (what a
/// linear projection produces, so no transposes); log-sum-exp and Delta are [batch, queryHeads, queryLength].
/// Query head h reads kv head h / (QueryHeads / KvHeads). Tile, LanesPerRow and Staged are launch geometry.
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
    /// <summary>
    /// The group stages each K/V (or Q/dO) tile in shared memory and its rows read it there; otherwise every
    /// thread reads its tiles from global memory and no barrier runs (only with one lane per row). An int (1 or
    /// 0), since kernel parameters hold no bool.
    /// </summary>
    public int StagedTiles { get; init; }

    public bool Staged => StagedTiles != 0;

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
/// Work split. A row is one query (forward, dQ) or one key of one kv head (dK/dV). A group owns a block of
/// <c>Group.DimX / LanesPerRow</c> consecutive rows of one (batch, head), so all its rows read the same K/V
/// (or Q/dO) rows, and the grid strides over the blocks. Each row owns a slice of dynamic shared memory holding
/// its staged vectors, its accumulators and the strip of one tile's scores (odd-sized, so neighbouring rows
/// start in different banks). Per tile, the row's lanes first split the <em>keys</em> (each lane computes whole
/// dot products, up to four keys per pass so every element of the row's own vector is loaded once per four
/// products; only one reduction per tile is needed, for the running max), then split the <em>head dim</em> to
/// accumulate scores times value rows, four dims at a time, reading the other lanes' scores after one barrier.
/// </para>
/// <para>
/// Staged (every GPU launch): the whole group copies the tile's K and V rows into shared memory first, coalesced
/// (consecutive threads copy consecutive floats of a row) into rows padded to an odd stride, so the lanes of a
/// row, which read different keys at the same dim, hit different banks, and the rows of a warp, which read the
/// same key, get a broadcast. A tile is read from global memory once per group instead of once per row. Few lanes
/// per row (4 on a GPU) rather than one thread per row: each row keeps its query and accumulator in shared memory
/// (the head dim is a runtime value, so they cannot live in registers), and 32 rows of four lanes fit the shared
/// memory of a 128-thread group where 128 rows would not; the four lanes still give each tile enough independent
/// products. Unstaged (the CPU accelerator, one thread per row): a thread reads its tiles straight from memory,
/// where caches already keep them, and never waits at a barrier, since each barrier is an OS-thread barrier there.
/// Inside a tile all index arithmetic is 32-bit on a sub-view whose 64-bit base is computed once per tile.
/// </para>
/// <para>
/// The mask needs no ordering of positions, but the work does: each query walks keys up to its last visible
/// one and each key walks queries from its first viewer, so sorted positions (the normal case) skip all the
/// masked work of causal attention. Those bounds come from a binary search when the positions are sorted (each
/// kernel checks once at start) and from a linear walk otherwise (routed tokens in any order stay correct).
/// </para>
/// <para>
/// Backward (FlashAttention-2): P = exp(s - lse) is recomputed tile by tile from the saved log-sum-exp.
/// <see cref="AttentionBackwardQuery"/> computes Delta_i = dO_i . O_i and dQ; <see cref="AttentionBackwardKeyValue"/>
/// then walks, for each key, every query head of its kv group and every query that sees the key, and writes dK,
/// dV once. No atomics, so gradients are bitwise reproducible; all three gradients accumulate (+=).
/// A query that sees no key gets output 0 and lse = -inf; it is never visited in the backward, so its
/// gradients are 0.
/// </para>
/// </summary>
internal static partial class AttentionKernels
{
    /// <summary>o = softmax(scale q k^T, masked) v per query row; lse = log-sum-exp of the scaled scores.</summary>
    public static void AttentionForward(AttentionShape s, AttentionInputs inputs, ArrayView<float> o, ArrayView<float> lse)
    {
        ArrayView<float> q = inputs.Q, k = inputs.K, v = inputs.V;
        ArrayView<int> qPos = inputs.QueryPositions, kPos = inputs.KeyPositions;
        var shared = SharedMemory.GetDynamic<float>();
        int groupSize = Group.DimX, thread = Group.IdxX;
        int lanes = s.LanesPerRow, d = s.HeadDim, tile = s.Tile, lq = s.QueryLength, lk = s.KeyLength, hq = s.QueryHeads;
        int headsPerKv = hq / s.KvHeads, qStride = hq * d, kStride = s.KvHeads * d, tileStride = TileStride(d);
        int tileFloats = s.Staged ? tile * tileStride : 0; // no tiles unstaged
        int lane = thread & (lanes - 1), offset = thread / lanes, rowsPerGroup = groupSize / lanes;
        int blocksPerHead = (lq + rowsPerGroup - 1) / rowsPerGroup, blocks = s.Batch * hq * blocksPerHead;
        var scratch = shared.SubView(0, groupSize);
        var kTile = shared.SubView(groupSize, tileFloats);
        var vTile = shared.SubView(groupSize + tileFloats, tileFloats);
        int rowBase = groupSize + (s.Staged ? ForwardTileFloats(d, tile) : 0) + offset * ForwardRowFloats(d, tile);
        var qs = shared.SubView(rowBase, d);
        var acc = shared.SubView(rowBase + d, d);
        var scores = shared.SubView(rowBase + 2 * d, tile);
        bool sorted = IsSorted(kPos, lk, scratch, s.Staged);

        for (int block = Grid.IdxX; block < blocks; block += Grid.DimX)
        {
            int head = block / blocksPerHead, b = head / hq, h = head - b * hq;
            int i = (block - head * blocksPerHead) * rowsPerGroup + offset;
            bool active = i < lq; // rows past the end still join the barriers
            long qAt = active ? ((long)b * lq + i) * qStride + (long)h * d : 0;
            long kvAt = (long)b * lk * kStride + (long)(h / headsPerKv) * d;
            int qp = active ? qPos[i] : 0;
            int end = active ? VisibleEnd(kPos, lk, qp, sorted) : 0;
            var qRow = q.SubView(qAt, d);
            for (int e = lane; e < d; e += lanes)
            {
                qs[e] = active ? qRow[e] * s.Scale : 0f;
                acc[e] = 0f;
            }
            int tiles = UniformMax((end + tile - 1) / tile, scratch, s.Staged);

            var softmax = new OnlineSoftmax { Max = float.NegativeInfinity };
            for (int t0 = 0; t0 < tiles; t0++)
            {
                int j0 = t0 * tile, inTile = XMath.Min(tile, lk - j0), count = XMath.Min(tile, end - j0);
                var kRows = k.SubView(kvAt + (long)j0 * kStride, RowsSpan(inTile, kStride, d));
                var vRows = v.SubView(kvAt + (long)j0 * kStride, RowsSpan(inTile, kStride, d));
                var kPosTile = kPos.SubView(j0, inTile);
                if (s.Staged)
                {
                    Stage(kRows, kStride, kTile, tileStride, inTile, d, thread, groupSize);
                    Stage(vRows, kStride, vTile, tileStride, inTile, d, thread, groupSize);
                    Group.Barrier();
                    softmax = ForwardTile(softmax, kTile, vTile, tileStride, kPosTile, qp, count, qs, acc, scores, scratch, lane, lanes, d);
                    Group.Barrier(); // every row is done with the tile before the next one is staged over it
                }
                else
                {
                    softmax = ForwardTile(softmax, kRows, vRows, kStride, kPosTile, qp, count, qs, acc, scores, scratch, lane, lanes, d);
                }
            }
            float sum = lanes == 1 ? softmax.Sum : GroupReduce.Sum(softmax.Sum, scratch, lanes);
            if (!active) continue;
            float inverse = sum > 0f ? 1f / sum : 0f;
            var oRow = o.SubView(qAt, d);
            for (int e = lane; e < d; e += lanes) oRow[e] = acc[e] * inverse;
            if (lane == 0) lse[(long)head * lq + i] = sum > 0f ? softmax.Max + XMath.Log(sum) : float.NegativeInfinity;
        }
    }

    /// <summary>The running max and this lane's share of the running sum of one query's online softmax.</summary>
    private struct OnlineSoftmax
    {
        public float Max, Sum;
    }

    /// <summary>
    /// One key tile of the forward for one query row: scores, the new running max, probabilities, and
    /// acc = acc * rescale + P v. Every thread of the group calls it (the max reduction has barriers).
    /// </summary>
    private static OnlineSoftmax ForwardTile(OnlineSoftmax state, ArrayView<float> kRows, ArrayView<float> vRows, int rowStride,
        ArrayView<int> kPosTile, int qp, int count, ArrayView<float> qs, ArrayView<float> acc, ArrayView<float> scores,
        ArrayView<float> scratch, int lane, int lanes, int d)
    {
        float localMax = float.NegativeInfinity;
        for (int t = lane; t < count; t += Block * lanes)
        {
            int n = BlockSize(t, count, lanes);
            var dots = Dot4(qs, kRows, t * rowStride, lanes * rowStride, n, d);
            for (int u = 0; u < n; u++)
            {
                int tu = t + u * lanes;
                float score = kPosTile[tu] <= qp ? dots.Get(u) : float.NegativeInfinity;
                scores[tu] = score;
                localMax = XMath.Max(localMax, score);
            }
        }
        float newMax = XMath.Max(state.Max, lanes == 1 ? localMax : GroupReduce.Max(localMax, scratch, lanes));
        bool none = newMax == float.NegativeInfinity; // nothing visible yet: keep exp away from -inf - -inf
        float rescale = none ? 1f : XMath.Exp(state.Max - newMax);
        float tileSum = 0f;
        for (int t = lane; t < count; t += lanes)
        {
            float p = none ? 0f : XMath.Exp(scores[t] - newMax);
            scores[t] = p;
            tileSum += p;
        }
        if (lanes > 1) Group.Barrier(); // every lane's probabilities are visible to all lanes of the row
        AccumulateRows(acc, rescale, scores, 0, count, vRows, 0, rowStride, lane, lanes, d);
        return new OnlineSoftmax { Max = newMax, Sum = state.Sum * rescale + tileSum };
    }

    /// <summary>
    /// delta = rowsum(dO * O); dq += scale * sum_j P_ij (dO_i . v_j - delta_i) k_j. Writes delta for
    /// <see cref="AttentionBackwardKeyValue"/>, which must run after this kernel.
    /// </summary>
    public static void AttentionBackwardQuery(AttentionShape s, AttentionInputs inputs, ArrayView<float> o, ArrayView<float> dO,
        ArrayView<float> lse, ArrayView<float> delta, ArrayView<float> dq)
    {
        ArrayView<float> q = inputs.Q, k = inputs.K, v = inputs.V;
        ArrayView<int> qPos = inputs.QueryPositions, kPos = inputs.KeyPositions;
        var shared = SharedMemory.GetDynamic<float>();
        int groupSize = Group.DimX, thread = Group.IdxX;
        int lanes = s.LanesPerRow, d = s.HeadDim, tile = s.Tile, lq = s.QueryLength, lk = s.KeyLength, hq = s.QueryHeads;
        int headsPerKv = hq / s.KvHeads, qStride = hq * d, kStride = s.KvHeads * d, tileStride = TileStride(d);
        int tileFloats = s.Staged ? tile * tileStride : 0; // no tiles unstaged
        int lane = thread & (lanes - 1), offset = thread / lanes, rowsPerGroup = groupSize / lanes;
        int blocksPerHead = (lq + rowsPerGroup - 1) / rowsPerGroup, blocks = s.Batch * hq * blocksPerHead;
        var scratch = shared.SubView(0, groupSize);
        var kTile = shared.SubView(groupSize, tileFloats);
        var vTile = shared.SubView(groupSize + tileFloats, tileFloats);
        int rowBase = groupSize + (s.Staged ? QueryGradTileFloats(d, tile) : 0) + offset * QueryGradRowFloats(d, tile);
        var qs = shared.SubView(rowBase, d);
        var dOs = shared.SubView(rowBase + d, d);
        var acc = shared.SubView(rowBase + 2 * d, d);
        var dScores = shared.SubView(rowBase + 3 * d, tile);
        bool sorted = IsSorted(kPos, lk, scratch, s.Staged);

        for (int block = Grid.IdxX; block < blocks; block += Grid.DimX)
        {
            int head = block / blocksPerHead, b = head / hq, h = head - b * hq;
            int i = (block - head * blocksPerHead) * rowsPerGroup + offset;
            bool active = i < lq;
            long qAt = active ? ((long)b * lq + i) * qStride + (long)h * d : 0;
            long kvAt = (long)b * lk * kStride + (long)(h / headsPerKv) * d;
            long statsAt = (long)head * lq + i;
            var qRow = q.SubView(qAt, d);
            var oRow = o.SubView(qAt, d);
            var dORow = dO.SubView(qAt, d);
            float partial = 0f;
            for (int e = lane; e < d && active; e += lanes)
            {
                float g = dORow[e];
                partial += g * oRow[e];
                qs[e] = qRow[e] * s.Scale;
                dOs[e] = g;
                acc[e] = 0f;
            }
            float rowDelta = lanes == 1 ? partial : GroupReduce.Sum(partial, scratch, lanes);
            if (active && lane == 0) delta[statsAt] = rowDelta;
            int qp = active ? qPos[i] : 0;
            int end = active ? VisibleEnd(kPos, lk, qp, sorted) : 0;
            float rowLse = end > 0 ? lse[statsAt] : 0f;
            int tiles = UniformMax((end + tile - 1) / tile, scratch, s.Staged);

            for (int t0 = 0; t0 < tiles; t0++)
            {
                int j0 = t0 * tile, inTile = XMath.Min(tile, lk - j0), count = XMath.Min(tile, end - j0);
                var kRows = k.SubView(kvAt + (long)j0 * kStride, RowsSpan(inTile, kStride, d));
                var vRows = v.SubView(kvAt + (long)j0 * kStride, RowsSpan(inTile, kStride, d));
                var kPosTile = kPos.SubView(j0, inTile);
                if (s.Staged)
                {
                    Stage(kRows, kStride, kTile, tileStride, inTile, d, thread, groupSize);
                    Stage(vRows, kStride, vTile, tileStride, inTile, d, thread, groupSize);
                    Group.Barrier();
                    QueryGradTile(kTile, vTile, tileStride, kPosTile, qp, count, rowLse, rowDelta, qs, dOs, acc, dScores, lane, lanes, d);
                    Group.Barrier();
                }
                else
                {
                    QueryGradTile(kRows, vRows, kStride, kPosTile, qp, count, rowLse, rowDelta, qs, dOs, acc, dScores, lane, lanes, d);
                }
            }
            if (!active) continue;
            var dqRow = dq.SubView(qAt, d);
            for (int e = lane; e < d; e += lanes) dqRow[e] += s.Scale * acc[e];
        }
    }

    /// <summary>One key tile of dQ for one query row: dS = P (dO . v - delta), acc += dS k.</summary>
    private static void QueryGradTile(ArrayView<float> kRows, ArrayView<float> vRows, int rowStride, ArrayView<int> kPosTile,
        int qp, int count, float rowLse, float rowDelta, ArrayView<float> qs, ArrayView<float> dOs, ArrayView<float> acc,
        ArrayView<float> dScores, int lane, int lanes, int d)
    {
        for (int t = lane; t < count; t += Block * lanes)
        {
            int n = BlockSize(t, count, lanes), at = t * rowStride, step = lanes * rowStride;
            var scoreDots = Dot4(qs, kRows, at, step, n, d);
            var valueDots = Dot4(dOs, vRows, at, step, n, d);
            for (int u = 0; u < n; u++)
            {
                int tu = t + u * lanes;
                float p = kPosTile[tu] <= qp ? XMath.Exp(scoreDots.Get(u) - rowLse) : 0f;
                dScores[tu] = p * (valueDots.Get(u) - rowDelta);
            }
        }
        if (lanes > 1) Group.Barrier();
        AccumulateRows(acc, 1f, dScores, 0, count, kRows, 0, rowStride, lane, lanes, d);
    }
}
