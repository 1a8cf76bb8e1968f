using FlowHN.Models;

namespace FlowHN.Tests.Models;

public class SplitTimerTests
{
    [Fact]
    public void CrossingInterpolatesWhereTheTimesMeet()
    {
        var m = new List<SplitTimer.Measurement>
        {
            new(10, 1.0, 5.0), new(20, 2.0, 4.0), new(30, 6.0, 3.0), new(40, 9.0, 1.0),
        };
        // Between 20 (diff -2) and 30 (diff +3): 20 + 0.4 * 10 = 24 of 50 tokens.
        Assert.Equal(24.0 / 50, SplitTimer.Crossing(m, 50), 9);
    }

    [Fact]
    public void WithoutACrossingTheSlowerBranchGetsTheSmallestShare()
    {
        var attentionSlower = new List<SplitTimer.Measurement> { new(10, 9, 1), new(20, 9, 1) };
        Assert.Equal(10.0 / 50, SplitTimer.Crossing(attentionSlower, 50), 9);
        var ssmSlower = new List<SplitTimer.Measurement> { new(10, 1, 9), new(20, 1, 9) };
        Assert.Equal(20.0 / 50, SplitTimer.Crossing(ssmSlower, 50), 9);
    }

    [Fact]
    public void MeasuringTheLaunchedFlopsFindsTheFlopModelsBalance()
    {
        // With the FLOPs each branch launches as its "time" (deterministic, unlike a clock), the measured crossing
        // must land where the FLOP model balances the branches: this fails if the timer runs a branch on the
        // wrong tokens, swaps the branches, or picks a share its measurements do not support.
        var device = TestDevice.Cpu;
        var config = Presets.Get("flowhn", "tiny", 256) with
        {
            Dim = 32, Heads = 2, KvHeads = 1, MlpHidden = 64, Split = SplitStrategy.FlopAware, SplitContext = SplitContext.Prefix,
        };
        const int seqLen = 32;
        double LaunchedFlops(Action run)
        {
            double before = device.Runtime.Counters.ModelFlops;
            run();
            return device.Runtime.Counters.ModelFlops - before;
        }
        var (ratio, samples) = SplitTimer.Measure(device, config, batch: 1, seqLen, LaunchedFlops);
        Assert.Equal([4, 8, 12, 16, 20, 24, 28], samples.Select(s => s.AttentionTokens));
        for (int i = 1; i < samples.Count; i++)
        {
            Assert.True(samples[i].AttentionMs > samples[i - 1].AttentionMs, "attention's cost must grow with its tokens");
            Assert.True(samples[i].SsmMs < samples[i - 1].SsmMs, "the SSM's cost must shrink as attention takes tokens");
        }
        Assert.Equal(SplitTimer.Crossing(samples, seqLen), ratio);
        double balanced = FlowHNLM.Balance(config, seqLen).AttentionTokens / (double)seqLen;
        Assert.InRange(ratio, balanced - 1.0 / seqLen, balanced + 1.0 / seqLen);
    }
}
