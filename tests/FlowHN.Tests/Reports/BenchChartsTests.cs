using FlowHN.Models;
using FlowHN.Reports;
using FlowHN.Diagnostics;
using ScottPlot;

namespace FlowHN.Tests.Reports;

public class BenchChartsTests
{
    private static BenchResult Row(string arch, string split, double tps, double kibPerToken, BranchBreakdown? breakdown = null) =>
        new(arch, split, 1_000_000, 128, 100, 90, 120, tps, 0.03, 1e12, "test", new StepMemory(1 << 24, 1 << 22, kibPerToken * 1024,
            new MemoryEstimate(1 << 22, kibPerToken * 1024)), 300, 5, 0, breakdown);

    private static readonly BranchBreakdown Split = new(new BranchTimes(4, 6, 10), 12, new BranchTimes(8, 12, 20), 25);

    private static readonly BenchResult[] Rows =
    [
        Row("flowhn", "none", 800, 94, Split), Row("flowhn", "fac/prefix", 1800, 54, Split),
        Row("transformer", "-", 1400, 53), Row("mamba", "-", 1300, 66),
    ];

    [Fact]
    public void TheLongestThroughputBarIsTheFastestRowAndEndsAtItsValue()
    {
        var plot = BenchCharts.Throughput(Rows);
        var image = new ChartPixels(ChartStyle.Png(plot));
        Assert.True(image.LuminanceSpread() > 20);
        // Rows are drawn top to bottom: flowhn fac/prefix (1800 tokens/s, the fastest) is at position 2 of 3..0.
        var flowhn = image.Matching(ChartStyle.SeriesColor(0), plot.LastRender.DataRect);
        int rightmost = flowhn.Max(p => p.X);
        var end = plot.GetPixel(new Coordinates(1800, 2));
        Assert.InRange(rightmost, end.X - 4, end.X + 4);
        var barRows = flowhn.Where(p => p.X == rightmost).Select(p => p.Y).ToList();
        Assert.InRange(barRows.Average(), end.Y - 4, end.Y + 4);
    }

    [Fact]
    public void WritesTheChartsThatBenchMdEmbeds()
    {
        using var dir = new TempFolder();
        var files = BenchCharts.Write(Rows, dir.Path);
        Assert.Equal([BenchCharts.ThroughputFile, BenchCharts.BreakdownFile, BenchCharts.MemoryFile], files);
        string markdown = BenchCharts.Markdown(files);
        foreach (string file in files)
        {
            Assert.Contains($"]({file})", markdown);
            var image = new ChartPixels(File.ReadAllBytes(Path.Combine(dir.Path, file)));
            Assert.Equal((ChartStyle.Width, ChartStyle.Height), (image.Width, image.Height));
            Assert.True(image.LuminanceSpread() > 20, $"{file} looks blank");
        }
        Assert.Equal([BenchCharts.ThroughputFile, BenchCharts.MemoryFile], BenchCharts.Write(Rows[2..], dir.Path)); // no breakdown measured
    }

    [Fact]
    public void TheBreakdownStacksAttentionSsmAndRestThenBothAndRest()
    {
        var plot = BenchCharts.Breakdown(Rows);
        var image = new ChartPixels(ChartStyle.Png(plot));
        // The first row's upper bar: attention 4 + 8 = 12 ms, then SSM 18 ms up to 30, then the rest: 37 - 30 = 7 ms up to 37.
        var area = plot.LastRender.DataRect;
        int RightEdge(Color c, double position)
        {
            var y = plot.GetPixel(new Coordinates(0, position)).Y;
            return image.Matching(c, area).Where(p => Math.Abs(p.Y - y) < 3).Max(p => p.X);
        }
        Assert.InRange(RightEdge(ChartStyle.SeriesColor(0), 4), plot.GetPixel(new Coordinates(12, 0)).X - 4, plot.GetPixel(new Coordinates(12, 0)).X + 4);
        Assert.InRange(RightEdge(ChartStyle.SeriesColor(1), 4), plot.GetPixel(new Coordinates(30, 0)).X - 4, plot.GetPixel(new Coordinates(30, 0)).X + 4);
        Assert.InRange(RightEdge(ChartStyle.SeriesColor(2), 3), plot.GetPixel(new Coordinates(30, 0)).X - 4, plot.GetPixel(new Coordinates(30, 0)).X + 4);
    }
}
