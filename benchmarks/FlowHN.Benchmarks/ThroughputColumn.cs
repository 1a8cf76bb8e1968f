using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace FlowHN.Benchmarks;

/// <summary>A benchmark that knows how much work one invocation does (from its parameters alone).</summary>
public interface IWorkload
{
    /// <summary>Floating-point operations per invocation (0 when not meaningful).</summary>
    double Flops { get; }
    /// <summary>Bytes moved per invocation (0 when not meaningful).</summary>
    double Bytes { get; }
    /// <summary>Tokens trained per invocation (0 when not meaningful).</summary>
    double Tokens { get; }
}

/// <summary>GFLOP/s, GB/s and tokens/s next to the time, computed from the mean and the benchmark's declared work.</summary>
public sealed class ThroughputColumn : IColumn
{
    public string Id => nameof(ThroughputColumn);
    public string ColumnName => "Throughput";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => false;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "Work per invocation divided by the mean time";

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public bool IsAvailable(Summary summary) => true;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var report = summary[benchmarkCase];
        if (report?.ResultStatistics is null) return "-";
        if (Activator.CreateInstance(benchmarkCase.Descriptor.Type) is not IWorkload workload) return "-";
        foreach (var parameter in benchmarkCase.Parameters.Items)
            benchmarkCase.Descriptor.Type.GetProperty(parameter.Name)?.SetValue(workload, parameter.Value);
        double seconds = report.ResultStatistics.Mean * 1e-9;
        string flops = workload.Flops > 0 ? $"{Rate(workload.Flops / seconds / 1e9)} GFLOP/s" : "";
        string bytes = workload.Bytes > 0 ? $"{Rate(workload.Bytes / seconds / 1e9)} GB/s" : "";
        string tokens = workload.Tokens > 0 ? $"{workload.Tokens / seconds:N0} tok/s" : "";
        return string.Join(", ", new[] { flops, bytes, tokens }.Where(s => s.Length > 0));
    }

    /// <summary>One decimal, or three significant digits for the small rates of the CPU accelerator.</summary>
    private static string Rate(double value) => value >= 10 ? $"{value:0.0}" : $"{value:G3}";
}
