using FlowHN.Reports;

namespace FlowHN.Tests.Reports;

public class RunReportTests
{
    [Fact]
    public void TheReportListsTheNumbersOfMetricsJsonlAndEmbedsTheLossChart()
    {
        using var run = new TempFolder();
        run.Write("metrics.jsonl", string.Join("\n",
            ReportData.Eval(0, 5.5612),
            ReportData.Train(1, 5.4321, tokensPerSecond: 100, mfu: 0.01, stepSeconds: 0.4),
            ReportData.Train(2, 4.9876, tokensPerSecond: 400, mfu: 0.04, stepSeconds: 0.1),
            ReportData.Train(3, 4.1234, tokensPerSecond: 300, mfu: 0.03, stepSeconds: 0.2),
            ReportData.Train(4, 3.5, tokensPerSecond: 200, mfu: 0.02, stepSeconds: 0.3),
            ReportData.Eval(4, 3.2109)) + "\n");
        var facts = new RunFacts
        {
            Outcome = "Finished: trained to step 4.", Device = "a test device", Data = "data/sample (bytes)", Memory = "Peak 12.0 MiB",
            Model = [("Arch", "flowhn")], Training = RunFacts.Rows(new FlowHN.Training.TrainOptions { Steps = 4, Batch = 3 }),
        };
        string report = File.ReadAllText(RunReport.Write(run.Path, facts));

        Assert.Contains("Finished: trained to step 4.", report);
        Assert.Contains("| validation loss | 5.5612 (step 0) -> 3.2109 (step 4); best 3.2109 at step 4 |", report);
        Assert.Contains("| training loss, last step | 3.5000 (step 4) |", report);
        Assert.Contains("| training loss, mean of the last 4 steps | 4.5108 |", report); // (5.4321 + 4.9876 + 4.1234 + 3.5) / 4
        Assert.Contains("| tokens/s, median over 4 steps | 250 |", report);            // median of 100, 400, 300, 200
        Assert.Contains("| MFU, median | 2.50% |", report);
        Assert.Contains("| step time, median | 250.0 ms |", report);
        Assert.Contains("| tokens seen | 512 |", report);
        Assert.Contains("| 4 | 512 | 3.2109 | 24.80 |", report); // the evaluation table: step, tokens, loss, perplexity
        Assert.Contains("| Batch | 3 |", report);
        Assert.Contains("| Arch | flowhn |", report);
        Assert.Contains("a test device", report);
        Assert.Contains("](loss.png)", report);
        var image = new ChartPixels(File.ReadAllBytes(Path.Combine(run.Path, "loss.png")));
        Assert.Equal((ChartStyle.Width, ChartStyle.Height), (image.Width, image.Height));
    }

    [Fact]
    public void AReportOfARunStoppedBeforeItsFirstStepStillWrites()
    {
        using var run = new TempFolder();
        run.Write("metrics.jsonl", ReportData.Eval(0, 5.5) + "\n");
        string report = File.ReadAllText(RunReport.Write(run.Path, new RunFacts { Outcome = "Stopped by an error: the loss became NaN at step 1." }));
        Assert.Contains("the loss became NaN", report);
        Assert.Contains("| training steps | none logged |", report);
        Assert.True(File.Exists(Path.Combine(run.Path, "loss.png")));
    }

    [Fact]
    public void MedianIgnoresMissingValues()
    {
        Assert.Equal(2, RunReport.Median([3, double.NaN, 1, 2]));
        Assert.Equal(2.5, RunReport.Median([4, 1, 3, 2]));
        Assert.True(double.IsNaN(RunReport.Median([double.NaN])));
    }
}
