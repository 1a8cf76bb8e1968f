using System.Globalization;
using System.Text;

namespace FlowHN.Training;

/// <summary>Writes benchmark rows as bench.md (a table shaped like the paper's) and bench.csv.</summary>
public static class BenchReport
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static string Markdown(IReadOnlyList<BenchResult> rows, string header)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# flowhn bench").AppendLine().AppendLine(header).AppendLine();
        sb.AppendLine("| arch | split | params | TPS | MFU % | step ms median (min-max) | peak memory MiB | state MiB | activation KiB/token | launches/step | transfers/step |");
        sb.AppendLine("|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|");
        foreach (var r in rows)
            sb.AppendLine(Invariant, $"| {r.Arch} | {r.Split} | {r.Parameters / 1e6:0.00}M | {r.TokensPerSecond:0} | {r.Mfu * 100:0.00} | " +
                                     $"{r.MedianMs:0.0} ({r.MinMs:0.0}-{r.MaxMs:0.0}) | {Mib(r.PeakBytes):0.0} | {Mib(r.StateBytes):0.0} | " +
                                     $"{r.ActivationBytesPerToken / 1024:0.0} | {r.LaunchesPerStep:0} | {r.TransfersPerStep:0} |");
        var broken = rows.Where(r => r.Breakdown is not null).ToList();
        if (broken.Count > 0)
        {
            sb.AppendLine().AppendLine("Forward-pass breakdown (per step): FlowHN's branches summed over blocks; for shm and jamba the " +
                                       "attention and Mamba layers (each with its MLP), which run one after the other:").AppendLine();
            sb.AppendLine("| arch | split | attention ms | SSM ms | both (concurrent) ms | rest ms | overlap efficiency | branch imbalance |");
            sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|");
            foreach (var r in broken)
            {
                var b = r.Breakdown!;
                sb.AppendLine(Invariant, $"| {r.Arch} | {r.Split} | {b.AttentionMs:0.00} | {b.SsmMs:0.00} | {b.ConcurrentMs:0.00} | {b.RestMs:0.00} | " +
                                         $"{b.OverlapEfficiency:0.00} | {b.Imbalance * 100:0.0}% |");
            }
        }
        return sb.ToString();
    }

    public static string Csv(IReadOnlyList<BenchResult> rows)
    {
        var sb = new StringBuilder();
        sb.AppendLine("arch,split,parameters,tokens_per_step,step_ms_median,step_ms_min,step_ms_max,tps,mfu,peak_flops,peak_source," +
                      "peak_bytes,state_bytes,activation_bytes_per_token,launches_per_step,transfers_per_step,driver_allocations," +
                      "attention_ms,ssm_ms,concurrent_ms,overlap_efficiency,imbalance");
        foreach (var r in rows)
        {
            var b = r.Breakdown;
            sb.AppendLine(string.Join(",", new object?[]
            {
                r.Arch, r.Split, r.Parameters, r.TokensPerStep, r.MedianMs, r.MinMs, r.MaxMs, r.TokensPerSecond, r.Mfu, r.PeakUsed,
                $"\"{r.PeakSource}\"", r.PeakBytes, r.StateBytes, r.ActivationBytesPerToken, r.LaunchesPerStep, r.TransfersPerStep,
                r.DriverAllocations, b?.AttentionMs, b?.SsmMs, b?.ConcurrentMs, b?.OverlapEfficiency, b?.Imbalance,
            }.Select(v => v is IFormattable f ? f.ToString(null, Invariant) : v?.ToString() ?? "")));
        }
        return sb.ToString();
    }

    private static double Mib(long bytes) => bytes / (double)(1 << 20);
}
