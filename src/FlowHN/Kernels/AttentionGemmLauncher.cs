using FlowHN.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

/// <summary>
/// Attention as batched matrix products (tensor cores through cuBLAS on CUDA): the same contract as
/// <see cref="AttentionLauncher"/> (inputs, outputs, lse layout, gradients accumulated), so either backward can
/// follow either forward.
/// <para>
/// Queries go in blocks of <see cref="QueryBlock"/> rows per batch row, so the score block [Hq, rows, keys] stays
/// bounded. A block's keys are those from the first to the last key any of its queries sees (from the host copies
/// of the positions; all keys when there are none), so causal attention skips the keys after the block; the
/// mask by position is still applied per element. Per block: S = scale Q K^T, a masked row softmax writes P and
/// the lse, O = P V. Backward recomputes S and P per block, then dV += P^T dO, dP = dO V^T, dS = P (dP - Delta)
/// (one elementwise kernel), dQ += scale dS K, dK += scale dS^T Q.
/// </para>
/// <para>
/// Grouped KV heads are read in place: for each r &lt; Hq / Hkv one strided-batched product covers query heads
/// g * (Hq / Hkv) + r over the kv heads g (batch strides: a head's D columns), so K and V are never copied per
/// query head, and a kv head's gradient sums its query heads in a fixed order (bitwise reproducible).
/// </para>
/// </summary>
internal sealed class AttentionGemmLauncher : KernelFamily
{
    private const int CudaQueryBlock = 256;
    private const int CpuQueryBlock = 64;

    private readonly Lazy<GemmLauncher> gemm;
    private readonly Lazy<ElementwiseLauncher> elementwise;
    private readonly Action<AcceleratorStream, KernelConfig, AttentionBlock, int, ArrayView<float>, ArrayView<int>,
        ArrayView<int>, ArrayView<float>> softmax;
    private readonly Action<AcceleratorStream, KernelConfig, AttentionBlock, ArrayView<float>, ArrayView<int>, ArrayView<int>,
        ArrayView<float>> probabilities;
    private readonly Action<AcceleratorStream, KernelConfig, AttentionBlock, ArrayView<float>, ArrayView<float>, ArrayView<float>> scoreGradient;
    private readonly Action<AcceleratorStream, KernelConfig, int, AttentionShape, ArrayView<float>, ArrayView<float>, ArrayView<float>> rowDots;

    public AttentionGemmLauncher(ComputeDevice device, IScratchMemory scratch, Lazy<GemmLauncher> gemm,
        Lazy<ElementwiseLauncher> elementwise) : base(device, scratch)
    {
        this.gemm = gemm;
        this.elementwise = elementwise;
        softmax = Load<AttentionBlock, int, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<float>>(
            AttentionGemmKernels.MaskedSoftmax);
        probabilities = Load<AttentionBlock, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<float>>(
            AttentionGemmKernels.Probabilities);
        scoreGradient = Load<AttentionBlock, ArrayView<float>, ArrayView<float>, ArrayView<float>>(AttentionGemmKernels.ScoreGradient);
        rowDots = Load<int, AttentionShape, ArrayView<float>, ArrayView<float>, ArrayView<float>>(AttentionGemmKernels.RowDots);
        QueryBlock = device.Options.AttentionQueryBlock > 0 ? device.Options.AttentionQueryBlock
            : device.IsCuda ? CudaQueryBlock : CpuQueryBlock;
    }

    /// <summary>Query rows per block: the score block is at most Hq x QueryBlock x Lk floats (twice in the backward).</summary>
    public int QueryBlock { get; }

    /// <summary>
    /// o [B, Lq, Hq, D] and lse [B, Hq, Lq]; host positions (may be null) bound each block's keys. A
    /// <paramref name="queryBlock"/> above 0 overrides <see cref="QueryBlock"/> (checks use small ragged blocks).
    /// </summary>
    public void Forward(AttentionShape s, AttentionInputs inputs, int[]? queryPositions, int[]? keyPositions,
        ArrayView<float> o, ArrayView<float> lse, int queryBlock = 0)
    {
        var blocks = Blocks(s, queryPositions, keyPositions, queryBlock);
        using var scores = Scratch(ScoreFloats(s, blocks));
        double before = Counters.MatmulFlops;
        foreach (var range in blocks)
            for (int b = 0; b < s.Batch; b++)
            {
                var blk = Block(s, range, b);
                if (blk.Keys == 0)
                {
                    // No query of the block sees a key: output 0 (the softmax below writes lse = -inf).
                    long rowFloats = (long)s.QueryHeads * s.HeadDim;
                    elementwise.Value.Fill(o.SubView((b * (long)s.QueryLength + range.First) * rowFloats, range.Rows * rowFloats), 0f);
                }
                for (int r = 0; r < blk.HeadsPerKv; r++)
                    gemm.Value.MatMul(QueryRows(s, blk, inputs.Q, r), KeyColumns(s, blk, inputs.K), ScoresOf(scores.View, blk, r),
                        ScoreShape(s, blk, s.Scale), s.KvHeads);
                Softmax(blk, scores.View, inputs, lse);
                if (blk.Keys == 0) continue;
                for (int r = 0; r < blk.HeadsPerKv; r++)
                    gemm.Value.MatMul(ScoresOf(scores.View, blk, r), KeyRows(s, blk, inputs.V), QueryRows(s, blk, o, r),
                        OutputShape(s, blk, 1f, 0f), s.KvHeads);
            }
        Counters.AttentionMatmul(Counters.MatmulFlops - before);
    }

    /// <summary>
    /// The gradients += those for dO, given the forward's o and lse (either path's); <paramref name="delta"/>
    /// [B, Hq, Lq] is scratch. With grads.DK and grads.DV both invalid only dQ is computed.
    /// </summary>
    public void Backward(AttentionShape s, AttentionInputs inputs, int[]? queryPositions, int[]? keyPositions,
        ArrayView<float> o, ArrayView<float> lse, ArrayView<float> dO, ArrayView<float> delta, AttentionGradients grads,
        int queryBlock = 0)
    {
        if (grads.DK.IsValid != grads.DV.IsValid)
            throw new ArgumentException("Attention backward: dK and dV must both be given or both be left out.");
        Counters.Kernel();
        rowDots(Stream, Launch.Grid1D(Device, s.QueryRows), s.QueryRows, s, dO, o, delta);
        var blocks = Blocks(s, queryPositions, keyPositions, queryBlock);
        long floats = ScoreFloats(s, blocks);
        using var p = Scratch(floats);
        using var dS = Scratch(floats);
        double before = Counters.MatmulFlops;
        var mm = gemm.Value;
        foreach (var range in blocks)
            for (int b = 0; b < s.Batch; b++)
            {
                var blk = Block(s, range, b);
                if (blk.Keys == 0) continue; // its queries see nothing: no gradient anywhere
                for (int r = 0; r < blk.HeadsPerKv; r++)
                    mm.MatMul(QueryRows(s, blk, inputs.Q, r), KeyColumns(s, blk, inputs.K), ScoresOf(p.View, blk, r),
                        ScoreShape(s, blk, s.Scale), s.KvHeads);
                Counters.Kernel();
                probabilities(Stream, Launch.Grid1D(Device, (long)blk.ScoreRows * blk.Keys), blk, p.View,
                    inputs.QueryPositions, inputs.KeyPositions, lse);
                for (int r = 0; r < blk.HeadsPerKv; r++)
                {
                    if (grads.DV.IsValid)
                        mm.MatMul(ScoresOf(p.View, blk, r), QueryRows(s, blk, dO, r), KeyRows(s, blk, grads.DV),
                            KeyGradShape(s, blk, 1f), s.KvHeads);
                    mm.MatMul(QueryRows(s, blk, dO, r), KeyColumns(s, blk, inputs.V), ScoresOf(dS.View, blk, r),
                        ScoreShape(s, blk, 1f), s.KvHeads);
                }
                Counters.Kernel();
                scoreGradient(Stream, Launch.Grid1D(Device, (long)blk.ScoreRows * blk.Keys), blk, p.View, dS.View, delta);
                for (int r = 0; r < blk.HeadsPerKv; r++)
                {
                    mm.MatMul(ScoresOf(dS.View, blk, r), KeyRows(s, blk, inputs.K), QueryRows(s, blk, grads.DQ, r),
                        OutputShape(s, blk, s.Scale, 1f), s.KvHeads);
                    if (grads.DK.IsValid)
                        mm.MatMul(ScoresOf(dS.View, blk, r), QueryRows(s, blk, inputs.Q, r), KeyRows(s, blk, grads.DK),
                            KeyGradShape(s, blk, s.Scale), s.KvHeads);
                }
            }
        Counters.AttentionMatmul(Counters.MatmulFlops - before);
    }

    private void Softmax(AttentionBlock blk, ArrayView<float> scores, AttentionInputs inputs, ArrayView<float> lse)
    {
        Counters.Kernel();
        var (config, lanes) = Launch.PerRow(Device, blk.ScoreRows, blk.Keys);
        softmax(Stream, config, blk, lanes, scores, inputs.QueryPositions, inputs.KeyPositions, lse);
    }

    /// <summary>A block of queries and the keys its queries can see: [KeyStart, KeyEnd).</summary>
    internal readonly record struct QueryRange(int First, int Rows, int KeyStart, int KeyEnd);

    /// <summary>
    /// The query blocks with their key ranges: from the first to the last key whose position is at most the
    /// block's largest query position (the mask itself is applied per element). Without host positions, all keys.
    /// </summary>
    internal List<QueryRange> Blocks(AttentionShape s, int[]? queryPositions, int[]? keyPositions, int queryBlock = 0)
    {
        int size = queryBlock > 0 ? queryBlock : QueryBlock;
        bool known = queryPositions is not null && keyPositions is not null;
        var blocks = new List<QueryRange>();
        for (int first = 0; first < s.QueryLength; first += size)
        {
            int rows = Math.Min(size, s.QueryLength - first);
            if (!known)
            {
                blocks.Add(new QueryRange(first, rows, 0, s.KeyLength));
                continue;
            }
            int maxQuery = int.MinValue;
            for (int i = first; i < first + rows; i++) maxQuery = Math.Max(maxQuery, queryPositions![i]);
            int start = -1, end = 0;
            for (int j = 0; j < s.KeyLength; j++)
            {
                if (keyPositions![j] > maxQuery) continue;
                if (start < 0) start = j;
                end = j + 1;
            }
            blocks.Add(new QueryRange(first, rows, Math.Max(start, 0), end));
        }
        return blocks;
    }

    private static long ScoreFloats(AttentionShape s, List<QueryRange> blocks) =>
        Math.Max(1, blocks.Max(r => (long)s.QueryHeads * r.Rows * (r.KeyEnd - r.KeyStart)));

    private static AttentionBlock Block(AttentionShape s, QueryRange range, int batch) => new()
    {
        Batch = batch, QueryStart = range.First, Rows = range.Rows, KeyStart = range.KeyStart,
        Keys = range.KeyEnd - range.KeyStart, QueryHeads = s.QueryHeads, KvHeads = s.KvHeads, QueryLength = s.QueryLength,
    };

    // Operand views: each starts at the block's first element for head r (query side) or kv head 0 (key side);
    // the shapes below give the strides, and the batch of each product steps over the kv heads g.

    private static ArrayView<float> QueryRows(AttentionShape s, AttentionBlock blk, ArrayView<float> x, int r) =>
        x.SubView(((blk.Batch * (long)s.QueryLength + blk.QueryStart) * s.QueryHeads + r) * s.HeadDim);

    private static ArrayView<float> KeyRows(AttentionShape s, AttentionBlock blk, ArrayView<float> x) =>
        x.SubView((blk.Batch * (long)s.KeyLength + blk.KeyStart) * s.KvHeads * s.HeadDim);

    private static ArrayView<float> KeyColumns(AttentionShape s, AttentionBlock blk, ArrayView<float> x) => KeyRows(s, blk, x);

    private static ArrayView<float> ScoresOf(ArrayView<float> scores, AttentionBlock blk, int r) =>
        scores.SubView((long)r * blk.KvHeads * blk.Rows * blk.Keys);

    /// <summary>[rows, keys] = alpha * (query-side rows [rows, D]) (key-side rows [keys, D])^T into the score block.</summary>
    private static GemmShape ScoreShape(AttentionShape s, AttentionBlock blk, float alpha) => new()
    {
        M = blk.Rows, N = blk.Keys, K = s.HeadDim,
        ARow = s.QueryHeads * s.HeadDim, ACol = 1, ABatch = (long)blk.HeadsPerKv * s.HeadDim,
        BRow = 1, BCol = s.KvHeads * s.HeadDim, BBatch = s.HeadDim,
        CRow = blk.Keys, CBatch = (long)blk.Rows * blk.Keys,
        Alpha = alpha, Beta = 0f,
    };

    /// <summary>[rows, D] (query side) = alpha * scores [rows, keys] (key-side rows [keys, D]) + beta * itself.</summary>
    private static GemmShape OutputShape(AttentionShape s, AttentionBlock blk, float alpha, float beta) => new()
    {
        M = blk.Rows, N = s.HeadDim, K = blk.Keys,
        ARow = blk.Keys, ACol = 1, ABatch = (long)blk.Rows * blk.Keys,
        BRow = s.KvHeads * s.HeadDim, BCol = 1, BBatch = s.HeadDim,
        CRow = s.QueryHeads * s.HeadDim, CBatch = (long)blk.HeadsPerKv * s.HeadDim,
        Alpha = alpha, Beta = beta,
    };

    /// <summary>Key-side rows [keys, D] += alpha * scores^T [keys, rows] (query-side rows [rows, D]).</summary>
    private static GemmShape KeyGradShape(AttentionShape s, AttentionBlock blk, float alpha) => new()
    {
        M = blk.Keys, N = s.HeadDim, K = blk.Rows,
        ARow = 1, ACol = blk.Keys, ABatch = (long)blk.Rows * blk.Keys,
        BRow = s.QueryHeads * s.HeadDim, BCol = 1, BBatch = (long)blk.HeadsPerKv * s.HeadDim,
        CRow = s.KvHeads * s.HeadDim, CBatch = s.HeadDim,
        Alpha = alpha, Beta = 1f,
    };
}
