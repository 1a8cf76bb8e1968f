using FlowHN.Runtime;

namespace FlowHN.Models;

/// <summary>
/// What the two branches of a parallel block cost, in any one unit (forward FLOPs from <see cref="FlopModel"/>;
/// the split only depends on ratios). K and V projections are kept apart from the rest of the attention
/// branch's per-token work because the prefix context computes them for every token of the sequence.
/// </summary>
/// <param name="AttentionPerToken">Per token routed to attention: Q and O projections, the MLP; not K and V.</param>
/// <param name="KvPerToken">K and V projections per token they are computed for.</param>
/// <param name="PairCost">Scores plus weighted values per visible (query, key) pair: 4 * headDim * heads.</param>
/// <param name="SsmPerToken">Per token routed to the SSM branch: the mixer and the MLP.</param>
public sealed record BranchCosts(double AttentionPerToken, double KvPerToken, double PairCost, double SsmPerToken)
{
    /// <summary>The attention branch's costs from a model config (its MLP is the config's); the SSM's is given.</summary>
    public static BranchCosts FromConfig(ModelConfig c, double ssmPerToken) => new(
        AttentionPerToken: 2 * FlopModel.Linear(c.Dim, c.Dim) + FlopModel.SwiGluMlp(c.Dim, c.MlpHidden),
        KvPerToken: 2 * FlopModel.Linear(c.Dim, c.KvHeads * c.HeadDim),
        PairCost: 4.0 * c.HeadDim * c.Heads,
        SsmPerToken: ssmPerToken);

    internal void Validate()
    {
        foreach (double v in new[] { AttentionPerToken, KvPerToken, PairCost, SsmPerToken })
            if (!double.IsFinite(v) || v < 0) throw new ArgumentException($"Branch costs must be finite and non-negative: {this}.");
    }
}

/// <summary>The FLOPs each branch of a block spends under one split.</summary>
public sealed record SplitBalance(int SeqLen, int AttentionTokens, int SsmTokens, double AttentionFlops, double SsmFlops)
{
    /// <summary>|attention - SSM| / the larger: the fraction of the slower branch's time the other sits idle.</summary>
    public double Imbalance => Math.Abs(AttentionFlops - SsmFlops) / Math.Max(Math.Max(AttentionFlops, SsmFlops), 1e-300);

    public override string ToString() =>
        $"attention {AttentionTokens}/{SeqLen} tokens {AttentionFlops:E3} FLOPs, SSM {SsmTokens}/{SeqLen} tokens " +
        $"{SsmFlops:E3} FLOPs, imbalance {Imbalance:P1}";
}

/// <summary>
/// The FLOP-aware split: how many tokens attention gets so both branches cost the same. Attention work grows
/// with the square of its token count and the SSM's linearly, so the attention share shrinks as L grows.
/// Local context: attention's a tokens attend causally among themselves, a(a+1)/2 pairs. Prefix context:
/// a query at position p sees all p+1 keys up to it, and K/V are projected for all L tokens; the solver
/// assumes attention holds the trailing a positions (fa with prefix, and fac's first block: the costliest case).
/// </summary>
public static class SplitRatio
{
    /// <summary>The a in [1, L-1] minimising |F_attn(a) - F_ssm(L - a)| (ties go to the smaller a).</summary>
    public static SplitBalance Solve(BranchCosts costs, SplitContext context, int seqLen)
    {
        RequireSplittable(seqLen);
        costs.Validate();
        // F_attn(a) - F_ssm(L - a) never decreases with a, so bisect for the first a where it is >= 0.
        double Gap(int a) => TrailingAttention(costs, context, seqLen, a) - costs.SsmPerToken * (seqLen - a);
        int lo = 1, hi = seqLen - 1;
        while (lo < hi)
        {
            int mid = lo + (hi - lo) / 2;
            if (Gap(mid) >= 0) hi = mid;
            else lo = mid + 1;
        }
        int best = lo > 1 && Math.Abs(Gap(lo - 1)) <= Math.Abs(Gap(lo)) ? lo - 1 : lo;
        return Balance(costs, context, seqLen, best);
    }

    /// <summary>A user-given attention share: round(ratio * L), clamped to [1, L-1].</summary>
    public static int Fixed(double ratio, int seqLen)
    {
        RequireSplittable(seqLen);
        if (!double.IsFinite(ratio) || ratio <= 0 || ratio >= 1)
            throw new UserException($"The split ratio must lie strictly between 0 and 1, got {ratio}.");
        long a = (long)Math.Round(ratio * seqLen, MidpointRounding.AwayFromZero);
        return (int)Math.Clamp(a, 1, seqLen - 1);
    }

    /// <summary>Both branches' FLOPs with attention on the trailing <paramref name="attentionTokens"/> positions.</summary>
    public static SplitBalance Balance(BranchCosts costs, SplitContext context, int seqLen, int attentionTokens)
    {
        if (attentionTokens < 0 || attentionTokens > seqLen)
            throw new ArgumentOutOfRangeException(nameof(attentionTokens), $"{attentionTokens} tokens do not fit in {seqLen}.");
        int ssmTokens = seqLen - attentionTokens;
        return new SplitBalance(seqLen, attentionTokens, ssmTokens, TrailingAttention(costs, context, seqLen, attentionTokens),
            costs.SsmPerToken * ssmTokens);
    }

    /// <summary>Both branches' FLOPs for one block's actual routing (e.g. a fac window in the middle).</summary>
    public static SplitBalance Balance(BranchCosts costs, SplitContext context, BlockRouting routing)
    {
        int a = routing.AttentionPositions.Length;
        double pairs = 0;
        if (context == SplitContext.Local) pairs = a * (a + 1.0) / 2;
        else foreach (int p in routing.AttentionPositions) pairs += p + 1.0;
        double attention = Attention(costs, context, routing.SeqLen, a, pairs);
        return new SplitBalance(routing.SeqLen, a, routing.SsmPositions.Length, attention,
            costs.SsmPerToken * routing.SsmPositions.Length);
    }

    private static double TrailingAttention(BranchCosts costs, SplitContext context, int seqLen, int a)
    {
        // Local: a(a+1)/2 causal pairs. Prefix: positions L-a..L-1 see p+1 keys each, summing to a(2L-a+1)/2.
        double pairs = context == SplitContext.Local ? a * (a + 1.0) / 2 : a * (2.0 * seqLen - a + 1) / 2;
        return Attention(costs, context, seqLen, a, pairs);
    }

    private static double Attention(BranchCosts costs, SplitContext context, int seqLen, int a, double pairs)
    {
        int kvTokens = context == SplitContext.Local ? a : seqLen;
        return a * costs.AttentionPerToken + kvTokens * costs.KvPerToken + pairs * costs.PairCost;
    }

    private static void RequireSplittable(int seqLen)
    {
        if (seqLen < 2) throw new ArgumentOutOfRangeException(nameof(seqLen), $"Splitting needs at least 2 tokens, got {seqLen}.");
    }
}
