using System.Globalization;
using System.Text;

namespace FlowHN.Diagnostics;

/// <summary>Writes benchmark rows as bench.md (a table shaped like the paper's) and bench.csv.</summary>
public static class BenchReport
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static string Markdown(IReadOnlyList<BenchResult> rows, string header)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# flowhn bench").AppendLine().AppendLine(header).AppendLine();
        sb.AppendLine("| arch | split | params | TPS | MFU % | step ms median (min-max) | peak memory MiB | state MiB (model) | " +
                      "activation KiB/token (model) | launches/step | transfers/step |");
        sb.AppendLine("|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|");
        foreach (var r in rows)
            sb.AppendLine(Invariant, $"| {r.Arch} | {r.Split} | {r.Parameters / 1e6:0.00}M | {r.TokensPerSecond:0} | {r.Mfu * 100:0.00} | " +
                                     $"{r.MedianMs:0.0} ({r.MinMs:0.0}-{r.MaxMs:0.0}) | {Mib(r.Memory.PeakBytes):0.0} | " +
                                     $"{Mib(r.Memory.StateBytes):0.0} ({Mib(r.Memory.Predicted.StateBytes):0.0}) | " +
                                     $"{r.Memory.ActivationBytesPerToken / 1024:0.0} ({r.Memory.Predicted.ActivationBytesPerToken / 1024:0.0}) | " +
                                     $"{r.LaunchesPerStep:0} | {r.TransfersPerStep:0} |");
        var broken = rows.Where(r => r.Breakdown is not null).ToList();
        if (broken.Count > 0)
        {
            sb.AppendLine().AppendLine("Training-step breakdown, forward + backward: FlowHN's branches summed over blocks (both: from the " +
                                       "fork to the join); for shm and jamba the attention and Mamba layers (each with its MLP), for hymba " +
                                       "its attention and SSM heads, which run one after the other. Rest: everything else (embedding, " +
                                       "fusion, MLPs where not counted, head and loss). Overlap efficiency is " +
                                       "(attention + SSM) / both, 2 at best:").AppendLine();
            sb.AppendLine("| arch | split | attention ms | SSM ms | both ms | rest ms | overlap fwd / bwd / step | branch imbalance |");
            sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|");
            foreach (var r in broken)
            {
                var b = r.Breakdown!;
                sb.AppendLine(Invariant, $"| {r.Arch} | {r.Split} | {Passes(b, t => t.AttentionMs)} | {Passes(b, t => t.SsmMs)} | " +
                                         $"{Passes(b, t => t.ConcurrentMs)} | {b.RestMs:0.00} | {b.Forward.OverlapEfficiency:0.00} / " +
                                         $"{b.Backward.OverlapEfficiency:0.00} / {b.OverlapEfficiency:0.00} | {b.Imbalance * 100:0.0}% |");
            }
        }
        return sb.ToString();
    }

    public static string Csv(IReadOnlyList<BenchResult> rows)
    {
        var sb = new StringBuilder();
        sb.AppendLine("arch,split,parameters,tokens_per_step,step_ms_median,step_ms_min,step_ms_max,tps,mfu,peak_flops,peak_source," +
                      "peak_bytes,state_bytes,state_bytes_model,activation_bytes_per_token,activation_bytes_per_token_model," +
                      "launches_per_step,transfers_per_step,driver_allocations," +
                      "attention_fwd_ms,ssm_fwd_ms,concurrent_fwd_ms,forward_ms,attention_bwd_ms,ssm_bwd_ms,concurrent_bwd_ms,backward_ms," +
                      "overlap_efficiency,imbalance,overlap_fwd,overlap_bwd");
        foreach (var r in rows)
        {
            var b = r.Breakdown;
            sb.AppendLine(string.Join(",", new object?[]
            {
                r.Arch, r.Split, r.Parameters, r.TokensPerStep, r.MedianMs, r.MinMs, r.MaxMs, r.TokensPerSecond, r.Mfu, r.PeakUsed,
                $"\"{r.PeakSource}\"", r.Memory.PeakBytes, r.Memory.StateBytes, r.Memory.Predicted.StateBytes,
                r.Memory.ActivationBytesPerToken, r.Memory.Predicted.ActivationBytesPerToken, r.LaunchesPerStep, r.TransfersPerStep,
                r.DriverAllocations, b?.Forward.AttentionMs, b?.Forward.SsmMs, b?.Forward.ConcurrentMs, b?.ForwardMs,
                b?.Backward.AttentionMs, b?.Backward.SsmMs, b?.Backward.ConcurrentMs, b?.BackwardMs, b?.OverlapEfficiency, b?.Imbalance,
                b?.Forward.OverlapEfficiency, b?.Backward.OverlapEfficiency,
            }.Select(v => v is IFormattable f ? f.ToString(null, Invariant) : v?.ToString() ?? "")));
        }
        return sb.ToString();
    }

    /// <summary>"forward + backward" of one time.</summary>
    private static string Passes(BranchBreakdown b, Func<BranchTimes, double> time) =>
        string.Create(Invariant, $"{time(b.Forward):0.00} + {time(b.Backward):0.00}");

    private static double Mib(long bytes) => bytes / (double)(1 << 20);
}
