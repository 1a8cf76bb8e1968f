using FlowHN.Reports;
using ScottPlot;

namespace FlowHN.Tests.Reports;

public class RunChartsTests
{
    [Fact]
    public void EveryChartDecodesAtItsSizeAndIsNotBlank()
    {
        var runs = new[] { ReportData.Parabola("a"), ReportData.Parabola("b", minIndex: 40) };
        foreach (var (file, make) in RunCharts.All)
        {
            var image = new ChartPixels(ChartStyle.Png(make(runs), 640, 400));
            Assert.Equal((640, 400), (image.Width, image.Height));
            Assert.True(image.LuminanceSpread() > 20, $"{file} looks blank");
        }
    }

    [Fact]
    public void TheLossCurveIsLowestAtTheStepOfTheMinimum()
    {
        var plot = RunCharts.LossByStep([ReportData.Parabola()]);
        var (x, y) = LowestPoint(plot, ChartStyle.SeriesColor(0));
        var expected = plot.GetPixel(new Coordinates(900, 3));
        Assert.InRange(x, expected.X - 4, expected.X + 4);
        Assert.InRange(y, expected.Y - 4, expected.Y + 4);
    }

    [Fact]
    public void TheLossByTokensCurveIsLowestAtTheTokensOfTheMinimum()
    {
        var plot = RunCharts.LossByTokens([ReportData.Parabola()]);
        var (x, _) = LowestPoint(plot, ChartStyle.SeriesColor(0));
        var expected = plot.GetPixel(new Coordinates(0.9, 3)); // 900 steps x 1000 tokens, in millions
        Assert.InRange(x, expected.X - 4, expected.X + 4);
        Assert.Equal("tokens seen (millions)", plot.Axes.Bottom.Label.Text);
    }

    [Fact]
    public void AMissingLossIsAGapNotAZero()
    {
        var lines = Enumerable.Range(1, 20).Select(s => ReportData.Train(s, 4 - s * 0.1)).ToList();
        lines[9] = lines[9].Replace("\"loss\":3", "\"loss\":null");
        var run = RunMetrics.Parse("gap", lines);
        Assert.True(double.IsNaN(run.Train[9].Loss));
        var plot = RunCharts.LossByStep([run]);
        var (x, y) = LowestPoint(plot, ChartStyle.SeriesColor(0));
        var expected = plot.GetPixel(new Coordinates(20, 2)); // the last step is the lowest; a zero would be far below
        Assert.InRange(x, expected.X - 4, expected.X + 4);
        Assert.InRange(y, expected.Y - 4, expected.Y + 4);
    }

    [Fact]
    public void SeveralRunsShareTheAxesWithOneColourAndLegendEntryEach()
    {
        var plot = RunCharts.LossByStep([ReportData.Parabola("first"), ReportData.Parabola("second", minIndex: 50)]);
        var labels = plot.GetPlottables().SelectMany(p => p.LegendItems).Select(i => i.LabelText).ToList();
        Assert.Equal(["first train", "first validation", "second train", "second validation"], labels);
        var (x, _) = LowestPoint(plot, ChartStyle.SeriesColor(1));
        var expected = plot.GetPixel(new Coordinates(2500, 3)); // the second run's minimum: step 50^2
        Assert.InRange(x, expected.X - 4, expected.X + 4);
    }

    [Fact]
    public void ChartsUseTheEmbeddedFontNotWhateverTheMachineHas()
    {
        ChartStyle.NewPlot();
        Assert.Equal(ChartStyle.FontName, Fonts.Default);
        Assert.Equal("Inter", Fonts.GetTypeface(Fonts.Default, false, false).FamilyName);
        Assert.Equal("Inter", Fonts.GetTypeface(Fonts.Default, true, false).FamilyName); // titles ask for bold
    }

    /// <summary>The lowest pixel on screen (largest y) of a colour inside the data area.</summary>
    private static (int X, int Y) LowestPoint(Plot plot, Color color)
    {
        var image = new ChartPixels(ChartStyle.Png(plot));
        var points = image.Matching(color, plot.LastRender.DataRect);
        Assert.NotEmpty(points);
        int maxY = points.Max(p => p.Y);
        var lowest = points.Where(p => p.Y == maxY).ToList();
        return ((int)lowest.Average(p => p.X), maxY);
    }
}
