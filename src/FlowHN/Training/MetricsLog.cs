using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using FlowHN.Runtime;

namespace FlowHN.Training;

/// <summary>
/// Appends one JSON object per line to metrics.jsonl in the run directory, flushed at every line. JSON has no
/// NaN or infinity: such a value is written as <c>null</c> and its field named in <c>"non_finite"</c>.
/// </summary>
public sealed class MetricsLog : IDisposable
{
    public const string FileName = "metrics.jsonl";
    private static readonly JsonSerializerOptions Named = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };
    private readonly StreamWriter writer;

    public MetricsLog(string path, bool append)
    {
        writer = new StreamWriter(path, append) { AutoFlush = true };
    }

    public void Write(object record) => writer.WriteLine(Line(record));

    /// <summary>One JSON line; non-finite numbers become null and are listed in <c>non_finite</c>.</summary>
    public static string Line(object record)
    {
        var node = JsonSerializer.SerializeToNode(record, Named)!.AsObject();
        var nonFinite = new JsonArray();
        foreach (var (key, value) in node.ToList())
            if (value is JsonValue v && v.GetValueKind() == JsonValueKind.String && v.GetValue<string>() is "NaN" or "Infinity" or "-Infinity")
            {
                node[key] = null;
                nonFinite.Add(key);
            }
        if (nonFinite.Count > 0) node["non_finite"] = nonFinite;
        return node.ToJsonString();
    }

    public void Dispose() => writer.Dispose();

    /// <summary>
    /// Drops every entry after <paramref name="step"/> (and a torn last line) from a run's metrics.jsonl, through a
    /// temporary file and a rename, so a resumed run does not log the steps after its checkpoint twice.
    /// Returns how many lines were dropped.
    /// </summary>
    public static int Reconcile(string runDir, int step)
    {
        string path = Path.Combine(runDir, FileName);
        if (!File.Exists(path)) return 0;
        var kept = new List<string>();
        int dropped = 0;
        foreach (var line in File.ReadLines(path))
        {
            if (StepOf(line) is { } s && s <= step) kept.Add(line);
            else dropped++;
        }
        if (dropped == 0) return 0;
        File.WriteAllLines(path + ".tmp", kept);
        File.Move(path + ".tmp", path, overwrite: true);
        return dropped;
    }

    private static int? StepOf(string line)
    {
        try
        {
            return JsonNode.Parse(line)?["step"]?.GetValue<int>();
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            return null;
        }
    }

    /// <summary>Refuses a fresh run in a folder that already has metrics or checkpoints (they would be lost).</summary>
    public static void RequireFreshFolder(string runDir)
    {
        foreach (var dir in new[] { Checkpoint.PathIn(runDir), Checkpoint.NextIn(runDir), Checkpoint.OldIn(runDir) })
            if (Directory.Exists(dir))
                throw new UserException($"{runDir} already holds a checkpoint ({Path.GetFileName(dir)}/). Use --resume to continue it, or another --out.");
        if (File.Exists(Path.Combine(runDir, FileName)))
            throw new UserException($"{runDir} already holds {FileName} from an earlier run (but no checkpoint). " +
                                    "Use another --out, or move that file away to start over here.");
    }
}
