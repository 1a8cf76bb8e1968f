using ILGPU;
using ILGPU.Algorithms;

namespace FlowHN.Kernels;

internal static partial class AttentionKernels
{
    /// <summary>
    /// Per key j of kv head g: dv += sum P_ij dO_i and dk += scale * sum P_ij (dO_i . v_j - delta_i) q_i over
    /// every query head h of the group and every query i that sees the key. Staged, a tile is the Q and dO rows
    /// of <c>Tile</c> queries plus their lse and delta.
    /// </summary>
    public static void AttentionBackwardKeyValue(AttentionShape s, AttentionInputs inputs, ArrayView<float> dO, ArrayView<float> lse,
        ArrayView<float> delta, ArrayView<float> dk, ArrayView<float> dv)
    {
        ArrayView<float> q = inputs.Q, k = inputs.K, v = inputs.V;
        ArrayView<int> qPos = inputs.QueryPositions, kPos = inputs.KeyPositions;
        var shared = SharedMemory.GetDynamic<float>();
        int groupSize = Group.DimX, thread = Group.IdxX;
        int lanes = s.LanesPerRow, d = s.HeadDim, tile = s.Tile, lq = s.QueryLength, lk = s.KeyLength, hq = s.QueryHeads;
        int hkv = s.KvHeads, headsPerKv = hq / hkv, qStride = hq * d, kStride = hkv * d, tileStride = TileStride(d);
        int tileFloats = s.Staged ? tile * tileStride : 0, statsFloats = s.Staged ? tile : 0; // no tiles unstaged
        int lane = thread & (lanes - 1), offset = thread / lanes, rowsPerGroup = groupSize / lanes;
        int blocksPerHead = (lk + rowsPerGroup - 1) / rowsPerGroup, blocks = s.Batch * hkv * blocksPerHead;
        var scratch = shared.SubView(0, groupSize);
        var qTile = shared.SubView(groupSize, tileFloats);
        var dOTile = shared.SubView(groupSize + tileFloats, tileFloats);
        var lseTile = shared.SubView(groupSize + 2 * tileFloats, statsFloats);
        var deltaTile = shared.SubView(groupSize + 2 * tileFloats + statsFloats, statsFloats);
        int rowBase = groupSize + (s.Staged ? KeyValueGradTileFloats(d, tile) : 0) + offset * KeyValueGradRowFloats(d, tile);
        var row = new KeyRow
        {
            K = shared.SubView(rowBase, d),
            V = shared.SubView(rowBase + d, d),
            AccK = shared.SubView(rowBase + 2 * d, d),
            AccV = shared.SubView(rowBase + 3 * d, d),
            Probs = shared.SubView(rowBase + 4 * d, tile),
            DScores = shared.SubView(rowBase + 4 * d + tile, tile),
        };
        int queryTiles = (lq + tile - 1) / tile;
        bool sorted = IsSorted(qPos, lq, scratch, s.Staged);

        for (int block = Grid.IdxX; block < blocks; block += Grid.DimX)
        {
            int head = block / blocksPerHead, b = head / hkv, g = head - b * hkv;
            int j = (block - head * blocksPerHead) * rowsPerGroup + offset;
            bool active = j < lk;
            long kAt = active ? ((long)b * lk + j) * kStride + (long)g * d : 0;
            var kRow = k.SubView(kAt, d);
            var vRow = v.SubView(kAt, d);
            for (int e = lane; e < d && active; e += lanes)
            {
                row.K[e] = kRow[e] * s.Scale;
                row.V[e] = vRow[e];
                row.AccK[e] = 0f;
                row.AccV[e] = 0f;
            }
            int kp = active ? kPos[j] : 0;
            int start = active ? FirstSeeing(qPos, lq, kp, sorted) : lq;
            int firstTile = -UniformMax(-(start / tile), scratch, s.Staged);

            for (int hh = 0; hh < headsPerKv; hh++)
            {
                int h = g * headsPerKv + hh;
                long qHead = (long)b * lq * qStride + (long)h * d;
                long statsHead = ((long)b * hq + h) * lq;
                for (int t0 = firstTile; t0 < queryTiles; t0++)
                {
                    int i0 = t0 * tile, inTile = XMath.Min(tile, lq - i0), from = XMath.Max(start - i0, 0);
                    var qRows = q.SubView(qHead + (long)i0 * qStride, RowsSpan(inTile, qStride, d));
                    var dORows = dO.SubView(qHead + (long)i0 * qStride, RowsSpan(inTile, qStride, d));
                    var lseRows = lse.SubView(statsHead + i0, inTile);
                    var deltaRows = delta.SubView(statsHead + i0, inTile);
                    var qPosTile = qPos.SubView(i0, inTile);
                    if (s.Staged)
                    {
                        Stage(qRows, qStride, qTile, tileStride, inTile, d, thread, groupSize);
                        Stage(dORows, qStride, dOTile, tileStride, inTile, d, thread, groupSize);
                        for (int t = thread; t < inTile; t += groupSize)
                        {
                            lseTile[t] = lseRows[t];
                            deltaTile[t] = deltaRows[t];
                        }
                        Group.Barrier();
                        KeyValueGradTile(row, qTile, dOTile, tileStride, lseTile, deltaTile, qPosTile, kp, from, inTile, lane, lanes, d);
                        Group.Barrier();
                    }
                    else
                    {
                        KeyValueGradTile(row, qRows, dORows, qStride, lseRows, deltaRows, qPosTile, kp, from, inTile, lane, lanes, d);
                    }
                }
            }
            if (!active) continue;
            var dkRow = dk.SubView(kAt, d);
            var dvRow = dv.SubView(kAt, d);
            for (int e = lane; e < d; e += lanes)
            {
                dkRow[e] += s.Scale * row.AccK[e];
                dvRow[e] += row.AccV[e];
            }
        }
    }

    /// <summary>One key's slices of shared memory in the dK/dV kernel.</summary>
    private struct KeyRow
    {
        public ArrayView<float> K, V, AccK, AccV, Probs, DScores;
    }

    /// <summary>
    /// One query tile of dK/dV for one key row: P and dS for the queries from <paramref name="from"/> on that see
    /// the key, then accV += P dO and accK += dS q.
    /// </summary>
    private static void KeyValueGradTile(KeyRow row, ArrayView<float> qRows, ArrayView<float> dORows, int rowStride,
        ArrayView<float> lseTile, ArrayView<float> deltaTile, ArrayView<int> qPosTile, int kp, int from, int count,
        int lane, int lanes, int d)
    {
        for (int t = from + lane; t < count; t += Block * lanes)
        {
            int n = BlockSize(t, count, lanes), at = t * rowStride, step = lanes * rowStride;
            var scoreDots = Dot4(row.K, qRows, at, step, n, d);
            var valueDots = Dot4(row.V, dORows, at, step, n, d);
            for (int u = 0; u < n; u++)
            {
                int tu = t + u * lanes;
                bool visible = qPosTile[tu] >= kp;
                float p = visible ? XMath.Exp(scoreDots.Get(u) - lseTile[tu]) : 0f;
                row.Probs[tu] = p;
                row.DScores[tu] = visible ? p * (valueDots.Get(u) - deltaTile[tu]) : 0f;
            }
        }
        if (lanes > 1) Group.Barrier();
        int visibleCount = count - from;
        AccumulateRows(row.AccV, 1f, row.Probs, from, visibleCount, dORows, from * rowStride, rowStride, lane, lanes, d);
        AccumulateRows(row.AccK, 1f, row.DScores, from, visibleCount, qRows, from * rowStride, rowStride, lane, lanes, d);
    }

    /// <summary>positions[i] = first + i (the positions of ordinary causal attention).</summary>
    public static void AttentionPositions(int n, ArrayView<int> positions, int first)
    {
        int start = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        for (int i = start; i < n; i += stride) positions[i] = first + i;
    }
}
