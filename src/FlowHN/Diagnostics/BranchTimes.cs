namespace FlowHN.Diagnostics;

/// <summary>
/// Times of the attention and SSM work of a pass (forward or backward), summed over blocks or layers:
/// each branch on its own, and both together (from the fork to the join; for sequential layers, their sum).
/// </summary>
public sealed record BranchTimes(double AttentionMs, double SsmMs, double ConcurrentMs)
{
    public static BranchTimes Zero { get; } = new(0, 0, 0);

    /// <summary>(t_attn + t_ssm) / t_both_concurrent: 2 is perfect overlap of equal branches, 1 none.</summary>
    public double OverlapEfficiency => (AttentionMs + SsmMs) / Math.Max(ConcurrentMs, 1e-12);

    /// <summary>|t_attn - t_ssm| / max: 0 when the split balances the branches exactly.</summary>
    public double Imbalance => Math.Abs(AttentionMs - SsmMs) / Math.Max(Math.Max(AttentionMs, SsmMs), 1e-12);

    public static BranchTimes operator +(BranchTimes a, BranchTimes b) =>
        new(a.AttentionMs + b.AttentionMs, a.SsmMs + b.SsmMs, a.ConcurrentMs + b.ConcurrentMs);
}
