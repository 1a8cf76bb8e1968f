using System.Globalization;
using System.Text.Json;
using FlowHN.Runtime;

namespace FlowHN.Reports;

/// <summary>One training step of metrics.jsonl; a value the file lacks (or holds as null) is NaN.</summary>
public sealed record TrainPoint(int Step, double Loss, double LearningRate, double GradNorm, double TokensPerSecond, double Mfu,
    double StepSeconds, double Tokens);

/// <summary>One evaluation of metrics.jsonl, with the tokens trained on when it ran (NaN when unknown).</summary>
public sealed record EvalPoint(int Step, double ValLoss, double Tokens);

/// <summary>
/// A run's metrics.jsonl, read back: training steps and evaluations in step order. A step logged twice (a run
/// resumed from an earlier checkpoint after a crash trains those steps again) keeps its last record, which is
/// the one the final weights came from.
/// </summary>
public sealed class RunMetrics
{
    public const string FileName = "metrics.jsonl";

    private RunMetrics(string name, IReadOnlyList<TrainPoint> train, IReadOnlyList<EvalPoint> eval, int skippedLines)
    {
        Name = name;
        Train = train;
        Eval = eval;
        SkippedLines = skippedLines;
    }

    /// <summary>The run's name on charts: its folder's name.</summary>
    public string Name { get; }

    public IReadOnlyList<TrainPoint> Train { get; }
    public IReadOnlyList<EvalPoint> Eval { get; }

    /// <summary>Lines that were not a complete JSON record (a line cut short by a crash, for one).</summary>
    public int SkippedLines { get; }

    /// <summary>Reads RUN/metrics.jsonl; a folder without one is a user error.</summary>
    public static RunMetrics Load(string runDir)
    {
        string path = Path.Combine(runDir, FileName);
        if (!File.Exists(path))
            throw new UserException($"{runDir} has no {FileName}: pass a run folder written by flowhn train (its --out).");
        string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(runDir)));
        return Parse(name, ReadLines(path));
    }

    /// <summary>Reads while a training run may still be appending (its last line may be cut short).</summary>
    private static IEnumerable<string> ReadLines(string path)
    {
        using var reader = new StreamReader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete));
        while (reader.ReadLine() is { } line) yield return line;
    }

    public static RunMetrics Parse(string name, IEnumerable<string> lines)
    {
        var train = new SortedDictionary<int, TrainPoint>();
        var eval = new SortedDictionary<int, double>();
        int skipped = 0;
        foreach (string line in lines)
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            if (!TryRead(line, train, eval)) skipped++;
        }
        // An evaluation at step s runs after step s, so it has seen that step's tokens (none before step 1).
        var evals = eval.Select(e => new EvalPoint(e.Key, e.Value,
            e.Key == 0 ? 0 : train.TryGetValue(e.Key, out var t) ? t.Tokens : double.NaN)).ToList();
        return new RunMetrics(name, train.Values.ToList(), evals, skipped);
    }

    private static bool TryRead(string line, SortedDictionary<int, TrainPoint> train, SortedDictionary<int, double> eval)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(line); }
        catch (JsonException) { return false; }
        using (doc)
        {
            var r = doc.RootElement;
            if (r.ValueKind != JsonValueKind.Object || !r.TryGetProperty("step", out var s) || !s.TryGetInt32(out int step)) return false;
            string? type = r.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
            if (type == "train")
                train[step] = new TrainPoint(step, Number(r, "loss"), Number(r, "lr"), Number(r, "grad_norm"), Number(r, "tokens_per_s"),
                    Number(r, "mfu"), Number(r, "step_s"), Number(r, "tokens"));
            else if (type == "eval")
                eval[step] = Number(r, "val_loss");
            return true; // other record types are for other readers
        }
    }

    /// <summary>A number, or NaN when missing or null; "NaN" and "Infinity" written as strings are read as such.</summary>
    private static double Number(JsonElement record, string name)
    {
        if (!record.TryGetProperty(name, out var v)) return double.NaN;
        return v.ValueKind switch
        {
            JsonValueKind.Number => v.GetDouble(),
            JsonValueKind.String when double.TryParse(v.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
            _ => double.NaN,
        };
    }
}
