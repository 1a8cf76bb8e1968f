using FlowHN.Models;
using FlowHN.Runtime;

namespace FlowHN.Tests.Models;

public class SplitRatioTests
{
    /// <summary>Attention FLOPs written from the definitions: per-token work, K/V, one cost per visible pair.</summary>
    private static double AttentionByCounting(BranchCosts c, SplitContext context, int seqLen, int[] queryPositions)
    {
        double pairs = 0;
        for (int qi = 0; qi < queryPositions.Length; qi++)
        {
            // Local: keys are the branch's own tokens up to the query; prefix: every token up to it.
            pairs += context == SplitContext.Local ? qi + 1 : queryPositions[qi] + 1;
        }
        int kvTokens = context == SplitContext.Local ? queryPositions.Length : seqLen;
        return queryPositions.Length * c.AttentionPerToken + kvTokens * c.KvPerToken + pairs * c.PairCost;
    }

    private static int[] Trailing(int seqLen, int a) => Enumerable.Range(seqLen - a, a).ToArray();

    /// <summary>Every a tried; the smallest a wins ties.</summary>
    private static int BruteForce(BranchCosts c, SplitContext context, int seqLen)
    {
        int best = 1;
        double bestGap = double.MaxValue;
        for (int a = 1; a < seqLen; a++)
        {
            double gap = Math.Abs(AttentionByCounting(c, context, seqLen, Trailing(seqLen, a)) - c.SsmPerToken * (seqLen - a));
            if (gap < bestGap)
            {
                bestGap = gap;
                best = a;
            }
        }
        return best;
    }

    [Fact]
    public void SolverMatchesBruteForceOnRandomCosts()
    {
        var random = new Random(5);
        for (int trial = 0; trial < 300; trial++)
        {
            int seqLen = 2 + random.Next(300);
            // Integer costs make exact ties possible, so the tie rule is exercised too.
            var costs = new BranchCosts(random.Next(0, 50), random.Next(0, 20), random.Next(0, 4), random.Next(1, 400));
            foreach (var context in Enum.GetValues<SplitContext>())
            {
                var solved = SplitRatio.Solve(costs, context, seqLen);
                Assert.Equal(BruteForce(costs, context, seqLen), solved.AttentionTokens);
                Assert.Equal(seqLen - solved.AttentionTokens, solved.SsmTokens);
                Assert.Equal(AttentionByCounting(costs, context, seqLen, Trailing(seqLen, solved.AttentionTokens)),
                    solved.AttentionFlops, 6);
                Assert.Equal(costs.SsmPerToken * solved.SsmTokens, solved.SsmFlops, 6);
            }
        }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(64)]
    [InlineData(1024)]
    public void EqualLinearCostsSplitInHalf(int seqLen)
    {
        var costs = new BranchCosts(AttentionPerToken: 70, KvPerToken: 30, PairCost: 0, SsmPerToken: 100);
        var solved = SplitRatio.Solve(costs, SplitContext.Local, seqLen);
        Assert.Equal(seqLen / 2, solved.AttentionTokens);
        Assert.Equal(0, solved.Imbalance);
    }

    [Fact]
    public void AHandWorkedQuadraticCase()
    {
        // Only pair costs on attention: 2 * a(a+1)/2 = a(a+1) against 4 (10 - a): a = 4 gives 20 vs 24, a = 5 gives 30 vs 20.
        var solved = SplitRatio.Solve(new BranchCosts(0, 0, PairCost: 2, SsmPerToken: 4), SplitContext.Local, 10);
        Assert.Equal(4, solved.AttentionTokens);
        Assert.Equal(20, solved.AttentionFlops);
        Assert.Equal(24, solved.SsmFlops);
    }

    [Fact]
    public void QuadraticAttentionGetsFewerThanHalfAndAShrinkingShare()
    {
        var costs = new BranchCosts(AttentionPerToken: 70, KvPerToken: 30, PairCost: 1, SsmPerToken: 100);
        double previousShare = 1;
        foreach (int seqLen in new[] { 64, 512, 4096, 32768 })
        {
            var solved = SplitRatio.Solve(costs, SplitContext.Local, seqLen);
            double share = (double)solved.AttentionTokens / seqLen;
            Assert.True(solved.AttentionTokens < seqLen / 2, $"L = {seqLen}: {solved}");
            Assert.True(share < previousShare, $"L = {seqLen}: share {share} did not shrink from {previousShare}");
            previousShare = share;
        }
    }

    [Fact]
    public void PrefixAttentionCostsMoreThanLocalAndGetsFewerTokens()
    {
        var costs = new BranchCosts(AttentionPerToken: 70, KvPerToken: 30, PairCost: 1, SsmPerToken: 100);
        const int seqLen = 512;
        for (int a = 1; a < seqLen; a += 37)
        {
            double local = SplitRatio.Balance(costs, SplitContext.Local, seqLen, a).AttentionFlops;
            double prefix = SplitRatio.Balance(costs, SplitContext.Prefix, seqLen, a).AttentionFlops;
            Assert.True(prefix > local, $"a = {a}: prefix {prefix} <= local {local}");
        }
        Assert.True(SplitRatio.Solve(costs, SplitContext.Prefix, seqLen).AttentionTokens
            < SplitRatio.Solve(costs, SplitContext.Local, seqLen).AttentionTokens);
    }

    [Fact]
    public void BalanceOfARoutingCountsItsActualPositions()
    {
        var costs = new BranchCosts(7, 3, 2, 11);
        const int seqLen = 12, a = 5;
        foreach (var context in Enum.GetValues<SplitContext>())
            for (int block = 0; block < 4; block++)
            {
                var routing = SplitPlanner.Plan(SplitStrategy.FlopAwareCirculating, context, block, 4, seqLen, a);
                var balance = SplitRatio.Balance(costs, context, routing);
                Assert.Equal(AttentionByCounting(costs, context, seqLen, routing.AttentionPositions), balance.AttentionFlops, 9);
                Assert.Equal(11.0 * (seqLen - a), balance.SsmFlops);
            }
        // fac's first block holds the trailing window, so it is what Solve balances.
        var first = SplitPlanner.Plan(SplitStrategy.FlopAwareCirculating, SplitContext.Prefix, 0, 4, seqLen, a);
        Assert.Equal(SplitRatio.Balance(costs, SplitContext.Prefix, seqLen, a), SplitRatio.Balance(costs, SplitContext.Prefix, first));
    }

    [Fact]
    public void CostsFromAConfigAgreeWithTheFlopModel()
    {
        var c = new ModelConfig { Dim = 64, Heads = 4, KvHeads = 2, MlpHidden = 160 };
        var costs = BranchCosts.FromConfig(c, ssmPerToken: 12345);
        const int seqLen = 40;
        // Attention on every token with local context is an ordinary causal decoder layer.
        double layer = SplitRatio.Balance(costs, SplitContext.Local, seqLen, seqLen).AttentionFlops / seqLen;
        double expected = FlopModel.AttentionLayer(c, seqLen) + FlopModel.SwiGluMlp(c.Dim, c.MlpHidden);
        Assert.Equal(expected, layer, 6);
        Assert.Equal(12345, costs.SsmPerToken);
    }

    [Theory]
    [InlineData(0.59, 1024, 604)]
    [InlineData(0.5, 7, 4)]
    [InlineData(0.001, 100, 1)]
    [InlineData(0.999, 100, 99)]
    public void FixedRatioRoundsAndClamps(double ratio, int seqLen, int expected) =>
        Assert.Equal(expected, SplitRatio.Fixed(ratio, seqLen));

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.0)]
    [InlineData(-0.2)]
    [InlineData(double.NaN)]
    public void FixedRatioOutsideTheOpenIntervalIsAUserError(double ratio) =>
        Assert.Contains("between 0 and 1", Assert.Throws<UserException>(() => SplitRatio.Fixed(ratio, 64)).Message);

    [Fact]
    public void NegativeCostsAndUnsplittableLengthsAreRejected()
    {
        Assert.Throws<ArgumentException>(() => SplitRatio.Solve(new BranchCosts(1, 1, -1, 1), SplitContext.Local, 8));
        Assert.Throws<ArgumentOutOfRangeException>(() => SplitRatio.Solve(new BranchCosts(1, 1, 1, 1), SplitContext.Local, 1));
    }
}
