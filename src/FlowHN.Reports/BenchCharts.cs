using System.Text;
using FlowHN.Diagnostics;
using ScottPlot;

namespace FlowHN.Reports;

/// <summary>
/// Charts of a bench run, written beside bench.md: tokens/s per architecture and split, the training step's
/// attention / SSM / both / rest times when --breakdown measured them, and activation memory per token.
/// </summary>
public static class BenchCharts
{
    public const string ThroughputFile = "bench-tps.png";
    public const string BreakdownFile = "bench-breakdown.png";
    public const string MemoryFile = "bench-memory.png";

    /// <summary>Writes the charts into <paramref name="dir"/>; returns their file names (breakdown only when measured).</summary>
    public static IReadOnlyList<string> Write(IReadOnlyList<BenchResult> rows, string dir)
    {
        var files = new List<(string, Plot)> { (ThroughputFile, Throughput(rows)), (MemoryFile, Memory(rows)) };
        if (rows.Any(r => r.Breakdown is not null)) files.Insert(1, (BreakdownFile, Breakdown(rows)));
        foreach (var (file, plot) in files) ChartStyle.Save(plot, Path.Combine(dir, file), svg: false);
        return files.Select(f => f.Item1).ToList();
    }

    /// <summary>The section bench.md ends with: each chart embedded.</summary>
    public static string Markdown(IReadOnlyList<string> files)
    {
        var sb = new StringBuilder().AppendLine().AppendLine("## Charts").AppendLine();
        foreach (string file in files) sb.AppendLine($"![{Path.GetFileNameWithoutExtension(file)}]({file})").AppendLine();
        return sb.ToString();
    }

    /// <summary>A row's name on the axis: the architecture, and FlowHN's split.</summary>
    public static string Label(BenchResult r) => r.Split is "-" or "" ? r.Arch : $"{r.Arch} {r.Split}";

    public static Plot Throughput(IReadOnlyList<BenchResult> rows) =>
        Bars(rows, "training throughput", "tokens/s", r => r.TokensPerSecond, "0");

    public static Plot Memory(IReadOnlyList<BenchResult> rows) =>
        Bars(rows, "activation memory per token (measured)", "KiB per token", r => r.Memory.ActivationBytesPerToken / 1024, "0.0");

    /// <summary>
    /// Per row two stacked bars (ms per step, forward + backward): the upper one attention, SSM and rest as if run
    /// one after the other; the lower one the branches' measured time together (fork to join) and the rest. Where
    /// the branches overlap (CUDA streams) the lower bar is the shorter.
    /// </summary>
    public static Plot Breakdown(IReadOnlyList<BenchResult> rows)
    {
        var plot = ChartStyle.NewPlot();
        var broken = rows.Where(r => r.Breakdown is not null).ToList();
        Color attention = ChartStyle.SeriesColor(0), ssm = ChartStyle.SeriesColor(1), both = ChartStyle.SeriesColor(2);
        var rest = Colors.Gray;
        var bars = new List<Bar>();
        var ticks = new List<Tick>();
        for (int i = 0; i < broken.Count; i++)
        {
            var b = broken[i].Breakdown!;
            double top = 3 * (broken.Count - 1 - i) + 1; // first row at the top
            bars.AddRange(Stack(top, (b.Step.AttentionMs, attention), (b.Step.SsmMs, ssm), (b.RestMs, rest)));
            bars.AddRange(Stack(top - 1, (b.Step.ConcurrentMs, both), (b.RestMs, rest)));
            ticks.Add(new Tick(top - 0.5, Label(broken[i])));
        }
        plot.Add.Bars(bars).Horizontal = true;
        foreach (var (text, color) in new[] { ("attention", attention), ("SSM", ssm), ("both (fork to join)", both), ("rest", rest) })
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = text, FillColor = color });
        plot.ShowLegend(Edge.Bottom);
        Axes(plot, ticks, "training-step breakdown: upper bar branches alone, lower bar together", "ms per step, forward + backward");
        return plot;
    }

    /// <summary>Bars that stack the positive parts one after the other from zero.</summary>
    private static IEnumerable<Bar> Stack(double position, params (double Value, Color Color)[] parts)
    {
        double start = 0;
        foreach (var (value, color) in parts)
        {
            if (!double.IsFinite(value) || value <= 0) continue;
            yield return new Bar { Position = position, ValueBase = start, Value = start + value, FillColor = color, Size = 0.9 };
            start += value;
        }
    }

    /// <summary>One bar per row (first row at the top), coloured by architecture, with its value written beside it.</summary>
    private static Plot Bars(IReadOnlyList<BenchResult> rows, string title, string valueLabel, Func<BenchResult, double> value, string format)
    {
        var plot = ChartStyle.NewPlot();
        var archs = rows.Select(r => r.Arch).Distinct().ToList();
        var bars = rows.Select((r, i) => new Bar
        {
            Position = rows.Count - 1 - i, Value = value(r), FillColor = ChartStyle.SeriesColor(archs.IndexOf(r.Arch)),
            Label = value(r).ToString(format, System.Globalization.CultureInfo.InvariantCulture),
        }).ToList();
        var plotted = plot.Add.Bars(bars);
        plotted.Horizontal = true;
        plotted.ValueLabelStyle.FontSize = 12;
        Axes(plot, rows.Select((r, i) => new Tick(rows.Count - 1 - i, Label(r))).ToList(), title, valueLabel);
        return plot;
    }

    /// <summary>Row names on the left axis, values along the bottom from zero.</summary>
    private static void Axes(Plot plot, IReadOnlyList<Tick> ticks, string title, string valueLabel)
    {
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.ToArray());
        plot.Axes.Left.MajorTickStyle.Length = 0;
        plot.Axes.Margins(left: 0, right: 0.12);
        plot.Grid.YAxisStyle.MajorLineStyle.Width = 0;
        plot.Title(title);
        plot.XLabel(valueLabel);
    }
}
