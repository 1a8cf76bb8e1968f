using System.Globalization;
using System.Text;
using System.Text.Json;

namespace FlowHN.Reports;

/// <summary>What the training command knows about a run beyond its metrics.jsonl.</summary>
public sealed record RunFacts
{
    /// <summary>How the run ended, as a sentence ("Finished at step 200 of 200.").</summary>
    public string Outcome { get; init; } = "";
    public string Device { get; init; } = "";
    public string Data { get; init; } = "";
    public string Memory { get; init; } = "";
    /// <summary>The model's settings as name/value rows (as checkpoint/config.json holds them).</summary>
    public IReadOnlyList<(string Name, string Value)> Model { get; init; } = [];
    /// <summary>The training options as name/value rows (as checkpoint/state.json holds them).</summary>
    public IReadOnlyList<(string Name, string Value)> Training { get; init; } = [];

    /// <summary>An object's public properties as rows, through its JSON form.</summary>
    public static IReadOnlyList<(string Name, string Value)> Rows(object settings)
    {
        using var doc = JsonDocument.Parse(JsonSerializer.Serialize(settings, settings.GetType()));
        return doc.RootElement.EnumerateObject()
            .Select(p => (p.Name, p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()! : p.Value.GetRawText())).ToList();
    }
}

/// <summary>
/// report.md of a run folder: how it ended, the loss curve (loss.png, written beside it), final losses, median
/// tokens/s, MFU and step time over its steps, every evaluation, the configuration, data, device and memory.
/// </summary>
public static class RunReport
{
    public const string FileName = "report.md";
    public const string LossChart = "loss.png";
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>Reads RUN/metrics.jsonl and writes RUN/loss.png and RUN/report.md; returns the report's path.</summary>
    public static string Write(string runDir, RunFacts facts)
    {
        var metrics = RunMetrics.Load(runDir);
        ChartStyle.Save(RunCharts.LossByStep([metrics]), Path.Combine(runDir, LossChart), svg: false);
        string path = Path.Combine(runDir, FileName);
        File.WriteAllText(path, Markdown(metrics, facts));
        return path;
    }

    public static string Markdown(RunMetrics m, RunFacts facts)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"# Run {m.Name}").AppendLine();
        if (facts.Outcome.Length > 0) sb.AppendLine(facts.Outcome).AppendLine();
        sb.AppendLine($"![training and validation loss of {m.Name}]({LossChart})").AppendLine();
        Results(sb, m);
        Evaluations(sb, m);
        Settings(sb, "Model", facts.Model);
        Settings(sb, "Training options", facts.Training);
        foreach (var (title, text) in new[] { ("Data", facts.Data), ("Device", facts.Device), ("Memory", facts.Memory) })
            if (text.Length > 0) sb.AppendLine($"## {title}").AppendLine().AppendLine(text).AppendLine();
        if (m.SkippedLines > 0)
            sb.AppendLine($"{m.SkippedLines} line(s) of {RunMetrics.FileName} were not complete records and were left out.").AppendLine();
        return sb.ToString();
    }

    private static void Results(StringBuilder sb, RunMetrics m)
    {
        sb.AppendLine("## Results").AppendLine().AppendLine("| measure | value |").AppendLine("|---|---|");
        var evals = m.Eval.Where(e => double.IsFinite(e.ValLoss)).ToList();
        if (evals.Count > 0)
        {
            var best = evals.MinBy(e => e.ValLoss)!;
            sb.AppendLine(Invariant, $"| validation loss | {evals[0].ValLoss:0.0000} (step {evals[0].Step}) -> {evals[^1].ValLoss:0.0000} " +
                                     $"(step {evals[^1].Step}); best {best.ValLoss:0.0000} at step {best.Step} |");
        }
        var steps = m.Train;
        if (steps.Count > 0)
        {
            var last = steps[^1];
            var tail = steps.Skip(Math.Max(0, steps.Count - 10)).ToList();
            sb.AppendLine(Invariant, $"| training loss, last step | {last.Loss:0.0000} (step {last.Step}) |");
            sb.AppendLine(Invariant, $"| training loss, mean of the last {tail.Count} steps | {Mean(tail.Select(p => p.Loss)):0.0000} |");
            sb.AppendLine(Invariant, $"| tokens/s, median over {steps.Count} steps | {Median(steps.Select(p => p.TokensPerSecond)):N0} |");
            sb.AppendLine(Invariant, $"| MFU, median | {Median(steps.Select(p => p.Mfu)) * 100:0.00}% |");
            double stepSeconds = Median(steps.Select(p => p.StepSeconds));
            string stepTime = stepSeconds < 1 ? (stepSeconds * 1000).ToString("0.0 'ms'", Invariant) : stepSeconds.ToString("0.000 's'", Invariant);
            sb.AppendLine($"| step time, median | {stepTime} |");
            sb.AppendLine(Invariant, $"| tokens seen | {last.Tokens:N0} |");
            double seconds = steps.Select(p => p.StepSeconds).Where(double.IsFinite).Sum();
            sb.AppendLine(Invariant, $"| time in training steps | {TimeSpan.FromSeconds(seconds):h\\:mm\\:ss} |");
        }
        else sb.AppendLine("| training steps | none logged |");
        sb.AppendLine();
    }

    private static void Evaluations(StringBuilder sb, RunMetrics m)
    {
        if (m.Eval.Count == 0) return;
        sb.AppendLine("## Evaluations").AppendLine().AppendLine("| step | tokens seen | validation loss | perplexity |")
            .AppendLine("|---:|---:|---:|---:|");
        foreach (var e in m.Eval)
            sb.AppendLine(Invariant, $"| {e.Step} | {e.Tokens:N0} | {e.ValLoss:0.0000} | {Math.Exp(e.ValLoss):0.00} |");
        sb.AppendLine();
    }

    private static void Settings(StringBuilder sb, string title, IReadOnlyList<(string Name, string Value)> rows)
    {
        if (rows.Count == 0) return;
        sb.AppendLine($"## {title}").AppendLine().AppendLine("| setting | value |").AppendLine("|---|---|");
        foreach (var (name, value) in rows) sb.AppendLine($"| {name} | {value} |");
        sb.AppendLine();
    }

    /// <summary>The median of the finite values (NaN when there are none).</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Where(double.IsFinite).Order().ToList();
        if (sorted.Count == 0) return double.NaN;
        int mid = sorted.Count / 2;
        return sorted.Count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    private static double Mean(IEnumerable<double> values) => values.Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average();
}
