using FlowHN.Models;
using FlowHN.Diagnostics;

namespace FlowHN.Tests.Diagnostics;

public class BenchTests
{
    private static BenchResult Row(string arch, string split, BranchBreakdown? breakdown = null) =>
        new(arch, split, 1_500_000, 128, 20, 18, 25, 6400, 0.123, 1e12, "fp32 table: H100",
            new StepMemory(4 << 20, 1 << 20, 2048.5, new MemoryEstimate(2 << 20, 3072)), 300, 5, 0, breakdown);

    [Fact]
    public void BreakdownArithmetic()
    {
        var forward = new BranchTimes(AttentionMs: 6, SsmMs: 4, ConcurrentMs: 6.25);
        Assert.Equal(1.6, forward.OverlapEfficiency, 9);    // (6 + 4) / 6.25
        Assert.Equal(2.0 / 6, forward.Imbalance, 9);        // |6 - 4| / 6
        Assert.Equal(0, new BranchTimes(5, 5, 5).Imbalance);
        var b = new BranchBreakdown(forward, ForwardMs: 10, new BranchTimes(12, 10, 13.75), BackwardMs: 15);
        Assert.Equal(new BranchTimes(18, 14, 20), b.Step);
        Assert.Equal(1.6, b.OverlapEfficiency, 9);          // (18 + 14) / 20
        Assert.Equal(4.0 / 18, b.Imbalance, 9);
        Assert.Equal(5, b.RestMs, 9);                       // 10 + 15 - 20
    }

    [Fact]
    public void MarkdownAndCsvCarryEveryRow()
    {
        var breakdown = new BranchBreakdown(new BranchTimes(6, 4, 6.25), 10, new BranchTimes(12, 10, 13.75), 15);
        var rows = new[] { Row("flowhn", "fac/prefix", breakdown), Row("transformer", "-") };
        string md = BenchReport.Markdown(rows, "device: test");
        Assert.Contains("| flowhn | fac/prefix | 1.50M | 6400 | 12.30 | 20.0 (18.0-25.0) | 4.0 | 1.0 (2.0) | 2.0 (3.0) | 300 | 5 |", md);
        Assert.Contains("| transformer | - |", md);
        Assert.Contains("| flowhn | fac/prefix | 6.00 + 12.00 | 4.00 + 10.00 | 6.25 + 13.75 | 5.00 | 1.60 / 1.60 / 1.60 | 22.2% |", md);
        var csv = BenchReport.Csv(rows).Trim().Split('\n');
        Assert.Equal(3, csv.Length);
        int columns = csv[0].Split(',').Length;
        Assert.All(csv, line => Assert.Equal(columns, line.Split(',').Length));
        Assert.StartsWith("flowhn,fac/prefix,1500000,128,20,18,25,6400,0.123,", csv[1]);
        Assert.Contains(",4194304,1048576,2097152,2048.5,3072,300,5,0,", csv[1]); // peak, state (model), activations (model), counters
    }

    [Fact]
    public void ATrainingStepUploadsOnlyItsTokensNeverWaitsForTheDeviceAndReusesMemory()
    {
        var device = TestDevice.Cpu;
        var config = Presets.Get("flowhn", "tiny", 64) with { Dim = 16, Heads = 2, KvHeads = 1, MlpHidden = 32 };
        var result = StepBenchmark.Run(device, config, batch: 2, seqLen: 12, warmup: 2, steps: 3, breakdown: true);
        // Token ids, the embedding plan (distinct ids, starts, order) and the targets in one upload, queued from
        // page-locked memory the prefetch thread filled; no download and no host synchronisation.
        Assert.Equal(1, result.TransfersPerStep);
        Assert.Equal(0, device.Runtime.Counters.Downloads);
        Assert.Equal(0, device.Runtime.Counters.HostSyncs);
        Assert.True(result.LaunchesPerStep > 50, $"{result.LaunchesPerStep} launches per step");
        Assert.True(result.Memory.PeakBytes >= result.Memory.StateBytes);
        Assert.NotNull(result.Breakdown);
        var b = result.Breakdown!;
        Assert.True(b.Forward.AttentionMs > 0 && b.Forward.SsmMs > 0 && b.Backward.AttentionMs > 0 && b.Backward.SsmMs > 0);
        // Streams are serial on the CPU: both branches together take their sum, and the pass at least that.
        Assert.True(b.Backward.ConcurrentMs >= b.Backward.AttentionMs + b.Backward.SsmMs);
        Assert.True(b.BackwardMs >= b.Backward.ConcurrentMs);
        Assert.Equal(0, result.DriverAllocations); // after the warm-up, steps are served from the allocator's cache
    }

    [Theory]
    [InlineData("shm")]
    [InlineData("hymba")]
    public void SequentialHybridsBreakDownTheirAttentionAndMambaPartsForwardAndBackward(string arch)
    {
        var config = Presets.Get(arch, "tiny", 64) with { Dim = 16, Heads = 2, KvHeads = 1, MlpHidden = 32 };
        var b = StepBenchmark.Run(TestDevice.Cpu, config, batch: 2, seqLen: 12, warmup: 1, steps: 1, breakdown: true).Breakdown!;
        Assert.True(b.Forward.AttentionMs > 0 && b.Forward.SsmMs > 0 && b.Backward.AttentionMs > 0 && b.Backward.SsmMs > 0);
        Assert.Equal(b.Backward.AttentionMs + b.Backward.SsmMs, b.Backward.ConcurrentMs, 9); // one after the other
        Assert.Equal(1, b.OverlapEfficiency, 9);
    }
}
