using FlowHN.Autograd;
using System.CommandLine;
using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Reports;
using FlowHN.Runtime;
using FlowHN.Diagnostics;

namespace FlowHN.Cli.Commands;

/// <summary>
/// <c>flowhn bench</c>: trains every requested architecture (and FlowHN split) for a few timed steps on this
/// device and writes bench.md and bench.csv: tokens/s, MFU with the peak used, step time, memory.
/// </summary>
public static class BenchCommand
{
    public static Command Create(CliConsole console)
    {
        var preset = CliOption.OneOf(CliOption.Create("--preset", $"Model size: {string.Join(", ", Presets.Names)}.", "tiny"), Presets.Names);
        var archs = CliOption.Create("--archs", $"Architectures, comma-separated, or all ({string.Join(", ", ArchitectureRegistry.Names)}).", "all");
        var splits = CliOption.Create("--splits", "FlowHN splits to run, comma-separated (none, ae, fa, fac).", "none,ae,fa,fac");
        var context = CliOption.Create("--split-context", "FlowHN split context: local or prefix.", "prefix");
        var splitRatio = CliOption.Parsed("--split-ratio", "FlowHN fa/fac attention share: flops (balance the FLOP model), time (balance branch " +
                                          "times measured on this device first) or a number in (0, 1).", AttentionShare.Flops, AttentionShare.TryParse,
            AttentionShare.Words);
        var ssms = CliOption.Create("--ssm", "SSM layers of flowhn, shm, jamba and hymba to run, comma-separated (mamba1, mamba2).", "mamba1");
        var steps = CliOption.Create("--steps", "Timed steps per model (the median is reported, with min and max).", 10, CliOption.Positive, "a positive step count");
        var warmup = CliOption.Create("--warmup", "Untimed steps first (kernel compilation, allocator warm-up).", 2, CliOption.NonNegative, "0 or more steps");
        var batch = CliOption.Create("--batch", $"Sequences per step (default: the preset's: {Defaults(p => p.BenchBatch)}).", 0, CliOption.NonNegative,
            "0 (the default) or a positive number");
        var seq = CliOption.Create("--seq", $"Tokens per sequence (default: the preset's: {Defaults(p => p.BenchSeqLen)}).", 0, v => v == 0 || v >= 2,
            "0 (the default) or at least 2");
        var vocab = CliOption.Create("--vocab", $"Vocabulary size for synthetic tokens (default: the preset tokenizer's: {Defaults(p => p.BenchVocab)}).", 0,
            v => v == 0 || v >= 2, "0 (the default) or at least 2");
        var data = CliOption.Create("--data", "Optional: train on this data (prepared shards or .txt folder) instead of synthetic tokens.", "");
        var breakdown = new Option<bool>("--breakdown")
        {
            Description = "Also time apart, forward and backward: " +
                          string.Join("; ", ArchitectureRegistry.All.Where(a => a.BreakdownParts is not null).Select(a => $"{a.Name}'s {a.BreakdownParts}")) + ".",
        };
        var noConcurrency = new Option<bool>("--no-branch-concurrency") { Description = "FlowHN branches one after the other (ablation)." };
        var recompute = new Option<bool>("--recompute") { Description = "Activation checkpointing: layers run again in the backward (not with --breakdown)." };
        var output = CliOption.Create("--out", "Folder for bench.md, bench.csv and the charts.", Path.Combine("runs", "bench"));
        var deviceOptions = new DeviceOptionSet();
        var command = new Command("bench", "Measure tokens/s and MFU of every architecture (the paper's table) on this device.");
        foreach (var option in new Option[] { preset, archs, splits, context, splitRatio, ssms, steps, warmup, batch, seq, vocab, data, breakdown, noConcurrency, recompute, output })
            command.Options.Add(option);
        deviceOptions.AddTo(command);
        command.SetAction(r =>
        {
            string presetName = r.GetValue(preset)!;
            var presetDefaults = Presets.Find(presetName);
            int b = r.GetValue(batch) > 0 ? r.GetValue(batch) : presetDefaults.BenchBatch;
            int l = r.GetValue(seq) > 0 ? r.GetValue(seq) : presetDefaults.BenchSeqLen;
            if (r.GetValue(steps) < 1 || r.GetValue(warmup) < 0) throw new UserException("--steps must be at least 1 and --warmup at least 0.");
            if (r.GetValue(breakdown) && r.GetValue(recompute)) throw new UserException("--breakdown and --recompute do not go together: " +
                                                                                        "with recomputation layers run twice.");
            var archList = ParseList(r.GetValue(archs)!);
            var splitList = r.GetValue(splits)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(SplitWords.ParseStrategy).ToList();
            var splitContext = SplitWords.ParseContext(r.GetValue(context)!);
            var ssmList = r.GetValue(ssms)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(SsmWords.Parse).ToList();
            using var device = DeviceOptionSet.Open(deviceOptions.Read(r), console);
            DataSource? source = r.GetValue(data) is { Length: > 0 } path
                ? DataSource.Open(path, presetDefaults.Tokenizer, Path.Combine("runs", "data-cache"))
                : null;
            int vocabSize = source?.VocabSize ?? (r.GetValue(vocab) > 0 ? r.GetValue(vocab) : presetDefaults.BenchVocab);
            string header = $"device: {device.Runtime.Describe()}; matmul: {device.MatmulBackend}; attention: {device.AttentionPath}; peak {device.Runtime.Peak}\n\n" +
                            $"preset {presetName}, batch {b}, sequence {l}, {r.GetValue(warmup)} warm-up + {r.GetValue(steps)} timed steps, " +
                            $"{(source is null ? $"synthetic tokens (vocabulary {vocabSize})" : $"data {source.Directory}")}, " +
                            $"{(r.GetValue(recompute) ? "activation checkpointing, " : "")}{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC" +
                            (archList.Any(a => a.SplitsTokens) ? $", split ratio {r.GetValue(splitRatio)}" : "") +
                            (archList.Any(a => a.SplitsTokens) ? $"\n\nbranch streams: {StreamPlan(device.Runtime, !r.GetValue(noConcurrency))}" : "") +
                            (device.Runtime.IsCuda && device.MatmulWarning is { } warning ? $"\n\n**warning:** {warning}" : "");
            console.Out.WriteLine(header);
            var results = new List<BenchResult>();
            foreach (var arch in archList)
                foreach (var planned in Configs(arch, presetName, vocabSize, splitList, splitContext, r.GetValue(splitRatio)!, ssmList))
                {
                    var (config, samples) = SplitTimer.Resolve(device, planned, b, l);
                    if (samples.Count > 0)
                        console.Out.WriteLine($"{arch.Name} {SplitWords.Label(config)}: --split-ratio time: measured times balance at an " +
                                              $"attention share of {config.SplitRatio}");
                    var loader = source is null ? null : new TokenLoader(source.Train, 1);
                    var result = StepBenchmark.Run(device, config, b, l, r.GetValue(warmup), r.GetValue(steps), r.GetValue(breakdown), loader,
                        branchConcurrency: !r.GetValue(noConcurrency), recompute: r.GetValue(recompute));
                    results.Add(result);
                    console.Out.WriteLine($"{result.Arch,-12} {result.Split,-11} {result.TokensPerSecond,10:N0} tok/s  MFU {result.Mfu * 100,6:0.00}%  " +
                                          $"step {result.MedianMs:0.0} ms ({result.MinMs:0.0}-{result.MaxMs:0.0})  peak {result.Memory.PeakBytes / (double)(1 << 20):0} MiB" +
                                          (result.Breakdown is { } bd
                                              ? $"  overlap fwd/bwd/step {bd.Forward.OverlapEfficiency:0.00}/{bd.Backward.OverlapEfficiency:0.00}/" +
                                                $"{bd.OverlapEfficiency:0.00} imbalance {bd.Imbalance * 100:0}%"
                                              : ""));
                }
            string dir = r.GetValue(output)!;
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, "bench.csv"), BenchReport.Csv(results));
            IReadOnlyList<string> charts = [];
            try
            {
                charts = BenchCharts.Write(results, dir);
            }
            catch (Exception e) // the measurements are what counts: a chart that cannot be drawn must not lose them
            {
                console.Error.WriteLine($"warning: no charts written ({e.GetType().Name}: {e.Message})");
            }
            File.WriteAllText(Path.Combine(dir, "bench.md"), BenchReport.Markdown(results, header) + (charts.Count > 0 ? BenchCharts.Markdown(charts) : ""));
            console.Out.WriteLine($"wrote {Path.Combine(dir, "bench.md")}, bench.csv{string.Concat(charts.Select(c => ", " + c))}");
            return 0;
        });
        return command;
    }

    /// <summary>"tiny 2, small 8, ...": a default of every preset, for option descriptions.</summary>
    private static string Defaults(Func<Preset, int> value) => string.Join(", ", Presets.All.Select(p => $"{p.Name} {value(p)}"));

    /// <summary>The configs bench runs for an architecture: one per split (FlowHN) and per SSM kind (where it chooses one).</summary>
    private static IEnumerable<ModelConfig> Configs(Architecture arch, string preset, int vocab, IReadOnlyList<SplitStrategy> splits,
        SplitContext context, AttentionShare ratio, IReadOnlyList<SsmKind> ssmKinds)
    {
        var config = arch.Config(preset, vocab);
        var bySsm = arch.ChoosesSsm ? ssmKinds.Select(k => config with { Ssm = k }).ToList() : [config];
        if (!arch.SplitsTokens) return bySsm;
        return bySsm.SelectMany(c => splits.Select(s => c with
        {
            Split = s, SplitContext = s == SplitStrategy.None ? SplitContext.Local : context,
            // The ratio only means something to the FLOP-aware splits; the others keep the default.
            SplitRatio = s is SplitStrategy.FlopAware or SplitStrategy.FlopAwareCirculating ? ratio : c.SplitRatio,
        }));
    }

    /// <summary>How FlowHN's branch streams will be made on this device (each model makes its own pair).</summary>
    private static string StreamPlan(ComputeDevice device, bool concurrency) =>
        !concurrency ? "off (--no-branch-concurrency)"
        : !device.IsCuda || device.IsMeta ? "off (the CPU accelerator runs streams one after the other)"
        : device.StreamPriorities is { HasLevels: true } range
            ? $"two CUDA streams, SSM branch at priority {range.Greatest} (the highest), attention at {range.Least}; {BranchStreams.PriorityRange(device)}"
            : $"two CUDA streams; {BranchStreams.PriorityRange(device)}";

    private static IReadOnlyList<Architecture> ParseList(string text) =>
        text == "all"
            ? ArchitectureRegistry.All
            : text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(ArchitectureRegistry.Get).ToList();

}
