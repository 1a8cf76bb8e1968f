using System.CommandLine;
using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Reports;
using FlowHN.Runtime;
using FlowHN.Training;

namespace FlowHN.Cli.Commands;

/// <summary>
/// <c>flowhn bench</c>: trains every requested architecture (and FlowHN split) for a few timed steps on this
/// device and writes bench.md and bench.csv: tokens/s, MFU with the peak used, step time, memory.
/// </summary>
public static class BenchCommand
{
    public static Command Create(CliConsole console)
    {
        var preset = CliOption.Create("--preset", "Model size: tiny, small, 135m, 350m, 1b.", "tiny");
        var archs = CliOption.Create("--archs", "Architectures, comma-separated, or all (flowhn, transformer, mamba, shm, jamba, hymba).", "all");
        var splits = CliOption.Create("--splits", "FlowHN splits to run, comma-separated (none, ae, fa, fac).", "none,ae,fa,fac");
        var context = CliOption.Create("--split-context", "FlowHN split context: local or prefix.", "prefix");
        var steps = CliOption.Create("--steps", "Timed steps per model (the median is reported, with min and max).", 10, CliOption.Positive, "a positive step count");
        var warmup = CliOption.Create("--warmup", "Untimed steps first (kernel compilation, allocator warm-up).", 2, CliOption.NonNegative, "0 or more steps");
        var batch = CliOption.Create("--batch", "Sequences per step (default: 8, or 2 for tiny).", 0, CliOption.NonNegative, "0 (the default) or a positive number");
        var seq = CliOption.Create("--seq", "Tokens per sequence (default: 1024, or 64 for tiny).", 0, v => v == 0 || v >= 2, "0 (the default) or at least 2");
        var vocab = CliOption.Create("--vocab", "Vocabulary size for synthetic tokens (default: GPT-2's 50257, or 256 bytes for tiny).", 0,
            v => v == 0 || v >= 2, "0 (the default) or at least 2");
        var data = CliOption.Create("--data", "Optional: train on this data (prepared shards or .txt folder) instead of synthetic tokens.", "");
        var breakdown = new Option<bool>("--breakdown") { Description = "Also time, forward and backward, FlowHN's branches (attention, SSM, both: overlap " +
                                                                           "efficiency and imbalance), shm's and jamba's attention and Mamba layers, and hymba's heads." };
        var noConcurrency = new Option<bool>("--no-branch-concurrency") { Description = "FlowHN branches one after the other (ablation)." };
        var recompute = new Option<bool>("--recompute") { Description = "Activation checkpointing: layers run again in the backward (not with --breakdown)." };
        var output = CliOption.Create("--out", "Folder for bench.md, bench.csv and the charts.", Path.Combine("runs", "bench"));
        var deviceOptions = new DeviceOptionSet();
        var command = new Command("bench", "Measure tokens/s and MFU of every architecture (the paper's table) on this device.");
        foreach (var option in new Option[] { preset, archs, splits, context, steps, warmup, batch, seq, vocab, data, breakdown, noConcurrency, recompute, output })
            command.Options.Add(option);
        deviceOptions.AddTo(command);
        command.SetAction(r =>
        {
            string presetName = r.GetValue(preset)!;
            bool tiny = presetName == "tiny";
            int b = r.GetValue(batch) > 0 ? r.GetValue(batch) : tiny ? 2 : 8;
            int l = r.GetValue(seq) > 0 ? r.GetValue(seq) : tiny ? 64 : 1024;
            if (r.GetValue(steps) < 1 || r.GetValue(warmup) < 0) throw new UserException("--steps must be at least 1 and --warmup at least 0.");
            if (r.GetValue(breakdown) && r.GetValue(recompute)) throw new UserException("--breakdown and --recompute do not go together: " +
                                                                                        "with recomputation layers run twice.");
            var archList = ParseList(r.GetValue(archs)!, Presets.Architectures);
            var splitList = r.GetValue(splits)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(SplitWords.ParseStrategy).ToList();
            var splitContext = SplitWords.ParseContext(r.GetValue(context)!);
            using var device = DeviceOptionSet.Open(deviceOptions.Read(r), console);
            DataSource? source = r.GetValue(data) is { Length: > 0 } path
                ? DataSource.Open(path, tiny ? ByteTokenizer.TokenizerName : Gpt2Tokenizer.TokenizerName, Path.Combine("runs", "data-cache"))
                : null;
            int vocabSize = source?.VocabSize ?? (r.GetValue(vocab) > 0 ? r.GetValue(vocab) : tiny ? 256 : 50257);
            string header = $"device: {device.Runtime.Describe()}; matmul: {device.MatmulBackend}; peak {device.Runtime.Peak}\n\n" +
                            $"preset {presetName}, batch {b}, sequence {l}, {r.GetValue(warmup)} warm-up + {r.GetValue(steps)} timed steps, " +
                            $"{(source is null ? $"synthetic tokens (vocabulary {vocabSize})" : $"data {source.Directory}")}, " +
                            $"{(r.GetValue(recompute) ? "activation checkpointing, " : "")}{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC" +
                            (device.Runtime.IsCuda && device.MatmulWarning is { } warning ? $"\n\n**warning:** {warning}" : "");
            console.Out.WriteLine(header);
            var results = new List<BenchResult>();
            foreach (string arch in archList)
                foreach (var config in Configs(arch, presetName, vocabSize, splitList, splitContext))
                {
                    var loader = source is null ? null : new TokenLoader(source.Train, 1);
                    var result = StepBenchmark.Run(device, config, b, l, r.GetValue(warmup), r.GetValue(steps), r.GetValue(breakdown), loader,
                        branchConcurrency: !r.GetValue(noConcurrency), recompute: r.GetValue(recompute));
                    results.Add(result);
                    console.Out.WriteLine($"{result.Arch,-12} {result.Split,-11} {result.TokensPerSecond,10:N0} tok/s  MFU {result.Mfu * 100,6:0.00}%  " +
                                          $"step {result.MedianMs:0.0} ms ({result.MinMs:0.0}-{result.MaxMs:0.0})  peak {result.Memory.PeakBytes / (double)(1 << 20):0} MiB" +
                                          (result.Breakdown is { } bd ? $"  overlap {bd.OverlapEfficiency:0.00} imbalance {bd.Imbalance * 100:0}%" : ""));
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

    private static IEnumerable<ModelConfig> Configs(string arch, string preset, int vocab, IReadOnlyList<SplitStrategy> splits, SplitContext context)
    {
        var config = Presets.Get(arch, preset, vocab);
        if (arch != "flowhn") return [config];
        return splits.Select(s => config with { Split = s, SplitContext = s == SplitStrategy.None ? SplitContext.Local : context });
    }

    private static IReadOnlyList<string> ParseList(string text, IReadOnlyList<string> all)
    {
        if (text == "all") return all;
        var list = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
        foreach (var item in list)
            if (!all.Contains(item)) throw new UserException($"Unknown architecture '{item}'. Architectures: {string.Join(", ", all)}.");
        return list;
    }

}
