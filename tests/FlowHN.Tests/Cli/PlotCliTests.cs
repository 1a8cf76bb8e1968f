using FlowHN.Cli;
using FlowHN.Runtime;
using FlowHN.Tests.Reports;

namespace FlowHN.Tests.Cli;

public class PlotCliTests
{
    private static (int Code, string Out, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = FlowHnCli.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static string WriteRun(TempFolder root, string name, double scale)
    {
        var lines = Enumerable.Range(1, 30).Select(s => ReportData.Train(s, scale * (5 - s * 0.1))).Append(ReportData.Eval(30, scale * 2.5));
        root.Write(Path.Combine(name, "metrics.jsonl"), string.Join("\n", lines) + "\n");
        return root.File(name);
    }

    [Fact]
    public void PlotOfTwoRunsWritesEveryChartAsPngAndSvg()
    {
        using var root = new TempFolder();
        using var output = new TempFolder();
        var (code, stdout, error) = Run("plot", WriteRun(root, "lr-high", 1), WriteRun(root, "lr-low", 0.8), "--out", output.Path);
        Assert.True(code == 0, error);
        foreach (string chart in new[] { "loss", "loss-tokens", "lr", "throughput" })
        {
            string png = Path.Combine(output.Path, chart + ".png");
            Assert.Contains(png, stdout);
            Assert.True(new ChartPixels(File.ReadAllBytes(png)).LuminanceSpread() > 20);
            Assert.Contains("lr-low", File.ReadAllText(Path.Combine(output.Path, chart + ".svg"))); // the legend names the runs
        }
    }

    [Fact]
    public void PlotOfOneRunWritesIntoTheRunFolder()
    {
        using var root = new TempFolder();
        string run = WriteRun(root, "only", 1);
        var (code, _, error) = Run("plot", run, "--no-svg");
        Assert.True(code == 0, error);
        Assert.True(File.Exists(Path.Combine(run, "loss.png")));
        Assert.False(File.Exists(Path.Combine(run, "loss.svg")));
    }

    [Fact]
    public void PlotOfAFolderWithoutMetricsIsOneClearError()
    {
        using var root = new TempFolder();
        var (code, output, error) = Run("plot", root.Path);
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", error);
        Assert.Contains("metrics.jsonl", error);
        Assert.DoesNotContain("   at ", error + output);
    }

    [Fact]
    public void TrainStoppedByANanLossStillWritesItsReport()
    {
        using var run = new TempFolder();
        using var cache = new TempFolder();
        var (code, _, error) = Run("train", "--device", "cpu", "--preset", "tiny", "--data", RepoPaths.Sample, "--cache", cache.Path,
            "--out", run.Path, "--steps", "4", "--batch", "2", "--seq", "16", "--eval-batches", "1", "--lr", "1e30", "--warmup", "0",
            "--grad-clip", "0");
        Assert.Equal(UserException.NonFiniteExitCode, code);
        Assert.Contains("NaN", error);
        string report = File.ReadAllText(Path.Combine(run.Path, "report.md"));
        Assert.Contains("Stopped by an error: The loss became NaN", report);
        Assert.True(File.Exists(Path.Combine(run.Path, "loss.png")));
    }
}
