using FlowHN.Reports;

namespace FlowHN.Tests.Reports;

public class RunMetricsTests
{
    [Fact]
    public void ReadsTrainAndEvalRecordsInStepOrder()
    {
        var run = RunMetrics.Parse("r", [ReportData.Eval(0, 5.5), ReportData.Train(1, 5.4, tokens: 64), ReportData.Train(2, 5.2, tokens: 128),
            ReportData.Eval(2, 5.1)]);
        Assert.Equal([1, 2], run.Train.Select(p => p.Step));
        Assert.Equal(5.2, run.Train[1].Loss);
        Assert.Equal(128, run.Train[1].Tokens);
        Assert.Equal([(0, 5.5, 0.0), (2, 5.1, 128.0)], run.Eval.Select(e => (e.Step, e.ValLoss, e.Tokens)));
    }

    [Fact]
    public void AStepLoggedTwiceKeepsItsLastRecord()
    {
        // A crash after step 3 with a checkpoint at step 2: the resumed run trains step 3 again.
        var run = RunMetrics.Parse("r", [ReportData.Train(1, 5), ReportData.Train(2, 4), ReportData.Train(3, 3), ReportData.Train(3, 3.5)]);
        Assert.Equal([5.0, 4.0, 3.5], run.Train.Select(p => p.Loss));
    }

    [Fact]
    public void NullAndNamedNonFiniteValuesAreMissingAndACutLineIsSkipped()
    {
        var run = RunMetrics.Parse("r", [
            "{\"type\":\"train\",\"step\":1,\"loss\":null,\"lr\":\"NaN\",\"tokens_per_s\":\"Infinity\",\"tokens\":64}",
            "{\"type\":\"note\",\"step\":1,\"text\":\"other readers' record\"}",
            "{\"type\":\"train\",\"step\":2,\"lo",
        ]);
        var p = Assert.Single(run.Train);
        Assert.True(double.IsNaN(p.Loss));
        Assert.True(double.IsNaN(p.LearningRate));
        Assert.True(double.IsPositiveInfinity(p.TokensPerSecond));
        Assert.True(double.IsNaN(p.Mfu)); // not in the record at all
        Assert.Equal(1, run.SkippedLines);
    }

    [Fact]
    public void ReadsARunThatIsStillWritingItsMetrics()
    {
        using var folder = new TempFolder();
        using var writer = new FlowHN.Training.MetricsLog(folder.File("metrics.jsonl"), append: false);
        writer.Write(new { type = "train", step = 1, loss = 5.0 });
        var run = RunMetrics.Load(folder.Path);
        Assert.Equal(5.0, Assert.Single(run.Train).Loss);
    }

    [Fact]
    public void AFolderWithoutMetricsIsAUserError()
    {
        using var folder = new TempFolder();
        var e = Assert.Throws<FlowHN.Runtime.UserException>(() => RunMetrics.Load(folder.Path));
        Assert.Contains("metrics.jsonl", e.Message);
    }
}
