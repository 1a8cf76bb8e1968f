using ILGPU;
using ILGPU.Algorithms;

namespace FlowHN.Kernels;

/// <summary>
/// One query block of one batch row in the gemm attention path: queries QueryStart .. QueryStart + Rows - 1 of
/// batch row Batch against keys KeyStart .. KeyStart + Keys - 1. The score block holds one [Rows, Keys] matrix per
/// query head, ordered (r, g) for query head h = g * HeadsPerKv + r, since one batched product covers the kv heads
/// g for a fixed r (see <see cref="AttentionGemmLauncher"/>).
/// </summary>
internal readonly record struct AttentionBlock
{
    public int Batch { get; init; }
    public int QueryStart { get; init; }
    public int Rows { get; init; }
    public int KeyStart { get; init; }
    public int Keys { get; init; }
    public int QueryHeads { get; init; }
    public int KvHeads { get; init; }
    public int QueryLength { get; init; }

    public int HeadsPerKv => QueryHeads / KvHeads;

    /// <summary>Score rows in the block (one per query head and query).</summary>
    public int ScoreRows => QueryHeads * Rows;

    /// <summary>Index into [B, Hq, Lq] (lse, Delta) of score row <paramref name="row"/>.</summary>
    public int StatIndex(int row)
    {
        int i = row % Rows, slot = row / Rows;
        int h = slot % KvHeads * HeadsPerKv + slot / KvHeads; // slot = r * KvHeads + g
        return (Batch * QueryHeads + h) * QueryLength + QueryStart + i;
    }
}

/// <summary>
/// The elementwise and row kernels of the gemm attention path; the products around them are cuBLAS (or the
/// other GEMM backends). Masks are by position as in the flash path: key j is visible to query i iff
/// kPos[j] &lt;= qPos[i], checked for every element, so any order of positions is right; the block's key range only
/// skips keys no query of the block sees. A query that sees no key gets P = 0 and lse = -inf.
/// </summary>
internal static class AttentionGemmKernels
{
    /// <summary>
    /// Masked row softmax of the (already scaled) scores in place: P = exp(s - lse) where visible, else 0, and the
    /// row's lse saved. Rows are walked as in <see cref="RowLoop"/> with fixed-order reductions (reproducible).
    /// </summary>
    public static void MaskedSoftmax(AttentionBlock blk, int lanesPerRow, ArrayView<float> scores, ArrayView<int> qPos,
        ArrayView<int> kPos, ArrayView<float> lse)
    {
        var scratch = SharedMemory.GetDynamic<float>();
        var loop = RowLoop.Of(lanesPerRow);
        int rows = blk.ScoreRows, keys = blk.Keys;
        for (int first = loop.Start; first < rows; first += loop.Step)
        {
            int row = first + loop.Offset;
            bool active = row < rows; // rows past the end still join the reductions' barriers
            int count = active ? keys : 0;
            int qp = active ? qPos[blk.QueryStart + row % blk.Rows] : 0;
            long start = (long)row * keys;
            float m = float.NegativeInfinity;
            for (int j = loop.Lane; j < count; j += lanesPerRow)
                if (kPos[blk.KeyStart + j] <= qp) m = XMath.Max(m, scores[start + j]);
            float max = GroupReduce.Max(m, scratch, lanesPerRow);
            float sum = 0f;
            if (max != float.NegativeInfinity)
                for (int j = loop.Lane; j < count; j += lanesPerRow)
                    if (kPos[blk.KeyStart + j] <= qp) sum += XMath.Exp(scores[start + j] - max);
            float total = GroupReduce.Sum(sum, scratch, lanesPerRow);
            float rowLse = max == float.NegativeInfinity ? float.NegativeInfinity : max + XMath.Log(total);
            for (int j = loop.Lane; j < count; j += lanesPerRow)
                scores[start + j] = kPos[blk.KeyStart + j] <= qp && rowLse != float.NegativeInfinity
                    ? XMath.Exp(scores[start + j] - rowLse) : 0f;
            if (active && loop.Lane == 0) lse[blk.StatIndex(row)] = rowLse;
        }
    }

    /// <summary>Backward: P recomputed from the scores and the forward's lse, elementwise (0 where masked).</summary>
    public static void Probabilities(AttentionBlock blk, ArrayView<float> scores, ArrayView<int> qPos,
        ArrayView<int> kPos, ArrayView<float> lse)
    {
        int n = blk.ScoreRows * blk.Keys, stride = Grid.DimX * Group.DimX;
        for (int index = Grid.GlobalIndex.X; index < n; index += stride)
        {
            int row = index / blk.Keys, j = index % blk.Keys;
            float rowLse = lse[blk.StatIndex(row)];
            bool visible = kPos[blk.KeyStart + j] <= qPos[blk.QueryStart + row % blk.Rows];
            scores[index] = visible && rowLse != float.NegativeInfinity ? XMath.Exp(scores[index] - rowLse) : 0f;
        }
    }

    /// <summary>Backward: dS = P (dP - Delta_row) in place of dP (P is 0 where masked, so dS is too).</summary>
    public static void ScoreGradient(AttentionBlock blk, ArrayView<float> probabilities, ArrayView<float> scoreGrad,
        ArrayView<float> delta)
    {
        int n = blk.ScoreRows * blk.Keys, stride = Grid.DimX * Group.DimX;
        for (int index = Grid.GlobalIndex.X; index < n; index += stride)
            scoreGrad[index] = probabilities[index] * (scoreGrad[index] - delta[blk.StatIndex(index / blk.Keys)]);
    }

    /// <summary>Delta [B, Hq, Lq] = rowsum(dO * O) per query row and head (sequential sum: reproducible).</summary>
    public static void RowDots(int rows, AttentionShape s, ArrayView<float> dO, ArrayView<float> o, ArrayView<float> delta)
    {
        int stride = Grid.DimX * Group.DimX, lq = s.QueryLength, hq = s.QueryHeads, d = s.HeadDim;
        for (int index = Grid.GlobalIndex.X; index < rows; index += stride)
        {
            int i = index % lq, h = index / lq % hq, b = index / lq / hq;
            long at = ((long)(b * lq + i) * hq + h) * d;
            float sum = 0f;
            for (int e = 0; e < d; e++) sum += dO[at + e] * o[at + e];
            delta[index] = sum;
        }
    }
}
