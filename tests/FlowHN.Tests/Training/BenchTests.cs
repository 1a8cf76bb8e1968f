using FlowHN.Models;
using FlowHN.Training;

namespace FlowHN.Tests.Training;

public class BenchTests
{
    private static BenchResult Row(string arch, string split, BranchBreakdown? breakdown = null) =>
        new(arch, split, 1_500_000, 128, 20, 18, 25, 6400, 0.123, 1e12, "fp32 table: H100", 4 << 20, 1 << 20, 2048.5, 300, 5, 0, breakdown);

    [Fact]
    public void BreakdownArithmetic()
    {
        var b = new BranchBreakdown(AttentionMs: 6, SsmMs: 4, ConcurrentMs: 6.25, ForwardMs: 10);
        Assert.Equal(1.6, b.OverlapEfficiency, 9);          // (6 + 4) / 6.25
        Assert.Equal(2.0 / 6, b.Imbalance, 9);              // |6 - 4| / 6
        Assert.Equal(3.75, b.RestMs, 9);
        Assert.Equal(0, new BranchBreakdown(5, 5, 5, 5).Imbalance);
    }

    [Fact]
    public void MarkdownAndCsvCarryEveryRow()
    {
        var rows = new[] { Row("flowhn", "fac/prefix", new BranchBreakdown(6, 4, 6.25, 10)), Row("transformer", "-") };
        string md = BenchReport.Markdown(rows, "device: test");
        Assert.Contains("| flowhn | fac/prefix | 1.50M | 6400 | 12.30 | 20.0 (18.0-25.0) | 4.0 | 1.0 | 2.0 | 300 | 5 |", md);
        Assert.Contains("| transformer | - |", md);
        Assert.Contains("| flowhn | fac/prefix | 6.00 | 4.00 | 6.25 | 3.75 | 1.60 | 33.3% |", md);
        var csv = BenchReport.Csv(rows).Trim().Split('\n');
        Assert.Equal(3, csv.Length);
        int columns = csv[0].Split(',').Length;
        Assert.All(csv, line => Assert.Equal(columns, line.Split(',').Length));
        Assert.StartsWith("flowhn,fac/prefix,1500000,128,20,18,25,6400,0.123,", csv[1]);
    }

    [Fact]
    public void ATrainingStepUploadsOnlyItsTokensNeverWaitsForTheDeviceAndReusesMemory()
    {
        var device = TestDevice.Cpu;
        var config = Presets.Get("flowhn", "tiny", 64) with { Dim = 16, Heads = 2, KvHeads = 1, MlpHidden = 32 };
        var result = StepBenchmark.Run(device, config, batch: 2, seqLen: 12, warmup: 2, steps: 3, breakdown: true);
        // Token ids, the embedding plan (distinct ids, starts, order) and the targets: five uploads, no download.
        Assert.Equal(5, result.TransfersPerStep);
        Assert.Equal(0, device.Counters.Downloads);
        Assert.True(result.LaunchesPerStep > 50, $"{result.LaunchesPerStep} launches per step");
        Assert.True(result.PeakBytes >= result.StateBytes);
        Assert.NotNull(result.Breakdown);
        Assert.True(result.Breakdown!.AttentionMs > 0 && result.Breakdown.SsmMs > 0);
        Assert.Equal(0, result.DriverAllocations); // after the warm-up, steps are served from the allocator's cache
    }
}
