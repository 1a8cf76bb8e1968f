using System.Globalization;
using System.Text;
using System.Text.Json;

namespace FlowHN.Inference;

/// <summary>Writes eval results as a JSON file and a markdown table (one row per task).</summary>
public static class EvalReport
{
    public static string Markdown(string model, IReadOnlyList<TaskResult> results)
    {
        var md = new StringBuilder();
        md.AppendLine($"Evaluation of {model}").AppendLine();
        md.AppendLine("| task | data | items | metric | value |").AppendLine("|---|---|---:|---|---:|");
        foreach (var r in results)
            foreach (var (name, value) in r.Metrics)
                md.AppendLine($"| {r.Task} | {r.Data} | {r.Items} | {name} | {Format(name, value)} |");
        return md.ToString();
    }

    public static string Json(string model, int step, IReadOnlyList<TaskResult> results) => JsonSerializer.Serialize(new
    {
        model,
        step,
        tasks = results.ToDictionary(r => r.Task, r => new
        {
            data = r.Data,
            items = r.Items,
            // NaN and infinity are not JSON: they are written as null.
            metrics = r.Metrics.ToDictionary(m => m.Key, m => double.IsFinite(m.Value) ? (double?)m.Value : null),
        }),
    }, new JsonSerializerOptions { WriteIndented = true });

    /// <summary>Writes both files: <paramref name="jsonPath"/> and the same path with .md.</summary>
    public static void Write(string jsonPath, string model, int step, IReadOnlyList<TaskResult> results)
    {
        if (Path.GetDirectoryName(Path.GetFullPath(jsonPath)) is string folder) Directory.CreateDirectory(folder);
        File.WriteAllText(jsonPath, Json(model, step, results));
        File.WriteAllText(Path.ChangeExtension(jsonPath, ".md"), Markdown(model, results));
    }

    private static string Format(string metric, double value) => metric switch
    {
        "tokens" => value.ToString("0", CultureInfo.InvariantCulture),
        "acc" or "acc_norm" => value.ToString("0.0000", CultureInfo.InvariantCulture),
        _ => value.ToString("0.000", CultureInfo.InvariantCulture),
    };
}
