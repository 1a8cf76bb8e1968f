using ScottPlot;

namespace FlowHN.Reports;

/// <summary>
/// Charts of one or several runs on the same axes (the legend names each run by its folder): training and
/// validation loss against step and against tokens seen, the learning rate, and tokens/s.
/// </summary>
public static class RunCharts
{
    /// <summary>The charts <see cref="WriteAll"/> writes, by file name.</summary>
    public static readonly IReadOnlyList<(string File, Func<IReadOnlyList<RunMetrics>, Plot> Make)> All =
    [
        ("loss.png", LossByStep),
        ("loss-tokens.png", LossByTokens),
        ("lr.png", LearningRate),
        ("throughput.png", Throughput),
    ];

    /// <summary>Writes every chart into <paramref name="outDir"/>; returns the PNG paths.</summary>
    public static IReadOnlyList<string> WriteAll(IReadOnlyList<RunMetrics> runs, string outDir, bool svg)
    {
        Directory.CreateDirectory(outDir);
        var paths = new List<string>();
        foreach (var (file, make) in All)
        {
            string path = Path.Combine(outDir, file);
            ChartStyle.Save(make(runs), path, svg);
            paths.Add(path);
        }
        return paths;
    }

    public static Plot LossByStep(IReadOnlyList<RunMetrics> runs) =>
        Loss(runs, "step", 1, p => p.Step, p => p.Step);

    public static Plot LossByTokens(IReadOnlyList<RunMetrics> runs)
    {
        double max = runs.SelectMany(r => r.Train.Select(p => p.Tokens)).Where(double.IsFinite).DefaultIfEmpty(0).Max();
        var (scale, unit) = max >= 1e9 ? (1e9, " (billions)") : max >= 1e6 ? (1e6, " (millions)") : max >= 1e4 ? (1e3, " (thousands)") : (1.0, "");
        return Loss(runs, "tokens seen" + unit, scale, p => p.Tokens, p => p.Tokens);
    }

    public static Plot LearningRate(IReadOnlyList<RunMetrics> runs) =>
        Lines(runs, "learning rate", "step", "learning rate", p => (p.Step, p.LearningRate));

    public static Plot Throughput(IReadOnlyList<RunMetrics> runs) =>
        Lines(runs, "throughput", "step", "tokens/s", p => (p.Step, p.TokensPerSecond));

    /// <summary>Training loss as a line and validation loss as dashed markers, in the run's colour.</summary>
    private static Plot Loss(IReadOnlyList<RunMetrics> runs, string xLabel, double scale,
        Func<TrainPoint, double> trainX, Func<EvalPoint, double> evalX)
    {
        var plot = ChartStyle.NewPlot();
        for (int i = 0; i < runs.Count; i++)
        {
            var run = runs[i];
            var color = ChartStyle.SeriesColor(i);
            var (tx, ty) = Finite(run.Train.Select(p => (trainX(p) / scale, p.Loss)));
            if (tx.Length > 0)
            {
                var train = plot.Add.ScatterLine(tx, ty, color);
                train.LineWidth = 1.5f;
                train.LegendText = $"{run.Name} train";
            }
            var (ex, ey) = Finite(run.Eval.Select(p => (evalX(p) / scale, p.ValLoss)));
            if (ex.Length > 0)
            {
                // A darker shade of the run's colour, not a dash pattern: Skia's SVG writer drops those (and says so on stderr).
                var eval = plot.Add.Scatter(ex, ey, color.Darken(0.45));
                eval.LineWidth = 2;
                eval.MarkerSize = 9;
                eval.LegendText = $"{run.Name} validation";
            }
        }
        Label(plot, "training and validation loss", xLabel, "loss (nats per token)");
        return plot;
    }

    private static Plot Lines(IReadOnlyList<RunMetrics> runs, string title, string xLabel, string yLabel,
        Func<TrainPoint, (double, double)> point)
    {
        var plot = ChartStyle.NewPlot();
        for (int i = 0; i < runs.Count; i++)
        {
            var (xs, ys) = Finite(runs[i].Train.Select(point));
            if (xs.Length == 0) continue;
            var line = plot.Add.ScatterLine(xs, ys, ChartStyle.SeriesColor(i));
            line.LineWidth = 1.5f;
            line.LegendText = runs[i].Name;
        }
        Label(plot, title, xLabel, yLabel);
        return plot;
    }

    private static void Label(Plot plot, string title, string xLabel, string yLabel)
    {
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        plot.ShowLegend(Alignment.UpperRight);
    }

    /// <summary>The points whose coordinates are both finite: a missing value is a gap, not a zero.</summary>
    private static (double[] Xs, double[] Ys) Finite(IEnumerable<(double X, double Y)> points)
    {
        var kept = points.Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).ToList();
        return (kept.Select(p => p.X).ToArray(), kept.Select(p => p.Y).ToArray());
    }
}
