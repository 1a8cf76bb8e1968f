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
    public void MeasuringOnTheCpuGivesAShareStrictlyBetweenZeroAndOne()
    {
        var config = Presets.Get("flowhn", "tiny", 256) with { Dim = 32, Heads = 2, KvHeads = 1, MlpHidden = 64 };
        var (ratio, samples) = SplitTimer.Measure(TestDevice.Cpu, config, batch: 1, seqLen: 32, repeats: 1);
        Assert.Equal(7, samples.Count);
        Assert.All(samples, s => Assert.True(s.AttentionMs > 0 && s.SsmMs > 0));
        Assert.InRange(ratio, 1.0 / 32, 31.0 / 32);
    }
}
