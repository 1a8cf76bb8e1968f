using System.Text.Json;

namespace FlowHN.Training;

/// <summary>Appends one JSON object per line to metrics.jsonl in the run directory, flushed at every line.</summary>
public sealed class MetricsLog : IDisposable
{
    private readonly StreamWriter writer;

    public MetricsLog(string path, bool append)
    {
        writer = new StreamWriter(path, append) { AutoFlush = true };
    }

    public void Write(object record) => writer.WriteLine(JsonSerializer.Serialize(record));

    public void Dispose() => writer.Dispose();
}
