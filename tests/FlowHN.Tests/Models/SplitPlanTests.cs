using FlowHN.Models;
using FlowHN.Runtime;

namespace FlowHN.Tests.Models;

public class SplitPlanTests
{
    private static readonly int[] Lengths = [2, 3, 6, 7, 16, 33];
    private static readonly int[] BlockCounts = [1, 2, 3, 5];

    public static IEnumerable<object[]> StrategiesAndContexts() =>
        from strategy in Enum.GetValues<SplitStrategy>()
        from context in Enum.GetValues<SplitContext>()
        select new object[] { strategy, context };

    /// <summary>Attention sizes that hit both edges and a middle value.</summary>
    private static IEnumerable<int> AttentionSizes(int seqLen) => new[] { 1, seqLen / 3, seqLen / 2, seqLen - 1 }
        .Where(a => a >= 1 && a < seqLen).Distinct();

    private static int[] Range(int from, int to) => Enumerable.Range(from, to - from).ToArray();

    /// <summary>What each strategy promises, written out independently of the planner.</summary>
    private static int[] ExpectedAttention(SplitStrategy strategy, SplitContext context, int block, int seqLen, int a) =>
        strategy switch
        {
            SplitStrategy.None => Range(0, seqLen),
            SplitStrategy.AlternatingEqual => block % 2 == 0 ? Range(0, seqLen / 2) : Range(seqLen / 2, seqLen),
            SplitStrategy.FlopAware => context == SplitContext.Local ? Range(0, a) : Range(seqLen - a, seqLen),
            // Walking backwards one token at a time from the end of the previous window, around the ring.
            _ => Enumerable.Range(1, a).Select(k => ((seqLen - block * a - k) % seqLen + seqLen) % seqLen).Order().ToArray(),
        };

    [Theory]
    [MemberData(nameof(StrategiesAndContexts))]
    public void EveryTokenGoesExactlyWhereItsStrategySays(SplitStrategy strategy, SplitContext context)
    {
        int plans = 0;
        foreach (int seqLen in Lengths)
        foreach (int blocks in BlockCounts)
        foreach (int a in AttentionSizes(seqLen))
        for (int block = 0; block < blocks; block++)
        {
            var r = SplitPlanner.Plan(strategy, context, block, blocks, seqLen, a);
            var attention = ExpectedAttention(strategy, context, block, seqLen, a);
            Assert.Equal(attention, r.AttentionPositions);
            var ssm = strategy == SplitStrategy.None ? Range(0, seqLen) : Range(0, seqLen).Except(attention).ToArray();
            Assert.Equal(ssm, r.SsmPositions);
            // Counted token by token: split strategies route each token once, none routes it to both branches.
            var counts = r.AttentionPositions.Concat(r.SsmPositions).GroupBy(p => p).ToDictionary(g => g.Key, g => g.Count());
            Assert.Equal(Range(0, seqLen), counts.Keys.Order());
            Assert.All(counts.Values, n => Assert.Equal(strategy == SplitStrategy.None ? 2 : 1, n));
            Assert.Equal(strategy != SplitStrategy.None, r.IsSplit);
            plans++;
        }
        Assert.True(plans > 100);
    }

    [Fact]
    public void FacMatchesThePapersSixTokenThreeBlockExample()
    {
        // Paper, 1-based: attention [5,6], then [3,4], then [1,2]; the SSM gets the rest, e.g. [1,2,5,6].
        var plans = SplitPlanner.PlanAll(SplitStrategy.FlopAwareCirculating, SplitContext.Local, 3, 6, 2);
        Assert.Equal(new[] { new[] { 4, 5 }, [2, 3], [0, 1] }, plans.Select(p => p.AttentionPositions));
        Assert.Equal(new[] { new[] { 0, 1, 2, 3 }, [0, 1, 4, 5], [2, 3, 4, 5] }, plans.Select(p => p.SsmPositions));
    }

    [Fact]
    public void FacWindowMovesBackwardsAndWrapsAroundTheStart()
    {
        // L = 7, a = 3: [4,5,6], [1,2,3], then 0 and the ring's end 5,6, then [2,3,4].
        var plans = SplitPlanner.PlanAll(SplitStrategy.FlopAwareCirculating, SplitContext.Prefix, 4, 7, 3);
        Assert.Equal(new[] { new[] { 4, 5, 6 }, [1, 2, 3], [0, 5, 6], [2, 3, 4] }, plans.Select(p => p.AttentionPositions));
        // Windows of consecutive blocks tile the ring: L/a blocks give every token one turn when a divides L.
        var covered = SplitPlanner.PlanAll(SplitStrategy.FlopAwareCirculating, SplitContext.Local, 4, 12, 3)
            .SelectMany(p => p.AttentionPositions).Order();
        Assert.Equal(Range(0, 12), covered);
    }

    [Fact]
    public void FaPrefixPutsAttentionOnTheTrailingTokensAndLocalOnTheLeading()
    {
        for (int block = 0; block < 3; block++)
        {
            var prefix = SplitPlanner.Plan(SplitStrategy.FlopAware, SplitContext.Prefix, block, 3, 10, 4);
            Assert.Equal([6, 7, 8, 9], prefix.AttentionPositions);
            Assert.Equal([0, 1, 2, 3, 4, 5], prefix.SsmPositions);
            var local = SplitPlanner.Plan(SplitStrategy.FlopAware, SplitContext.Local, block, 3, 10, 4);
            Assert.Equal([0, 1, 2, 3], local.AttentionPositions);
            Assert.Equal([4, 5, 6, 7, 8, 9], local.SsmPositions);
        }
    }

    [Theory]
    [InlineData(SplitContext.Local)]
    [InlineData(SplitContext.Prefix)]
    public void AeAlternatesTheHalvesBetweenBranches(SplitContext context)
    {
        var plans = SplitPlanner.PlanAll(SplitStrategy.AlternatingEqual, context, 4, 9, attentionTokens: 0);
        for (int block = 0; block < 4; block++)
        {
            var expectedAttention = block % 2 == 0 ? Range(0, 4) : Range(4, 9);
            Assert.Equal(expectedAttention, plans[block].AttentionPositions);
            // Swapped: the SSM of an odd block holds exactly what attention held in the block before.
            if (block > 0) Assert.Equal(plans[block - 1].AttentionPositions, plans[block].SsmPositions);
        }
    }

    [Theory]
    [InlineData(SplitStrategy.FlopAware, 0)]
    [InlineData(SplitStrategy.FlopAware, 8)]
    [InlineData(SplitStrategy.FlopAwareCirculating, -1)]
    [InlineData(SplitStrategy.FlopAwareCirculating, 9)]
    public void AttentionTokensOutsideTheSequenceAreRejected(SplitStrategy strategy, int attentionTokens)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => SplitPlanner.Plan(strategy, SplitContext.Local, 0, 2, 8, attentionTokens));
        Assert.Contains("1..7", e.Message);
    }

    [Fact]
    public void BadBlockIndexAndTooShortSequencesAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => SplitPlanner.Plan(SplitStrategy.None, SplitContext.Local, 3, 3, 8, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => SplitPlanner.Plan(SplitStrategy.AlternatingEqual, SplitContext.Local, -1, 3, 8, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => SplitPlanner.Plan(SplitStrategy.AlternatingEqual, SplitContext.Local, 0, 1, 1, 0));
        Assert.Single(SplitPlanner.Plan(SplitStrategy.None, SplitContext.Local, 0, 1, 1, 0).SsmPositions);
    }

    [Fact]
    public void CliWordsParseBothWaysAndUnknownWordsListTheValidOnes()
    {
        Assert.Equal(["none", "ae", "fa", "fac"], SplitWords.StrategyWords);
        foreach (var strategy in Enum.GetValues<SplitStrategy>())
            Assert.Equal(strategy, SplitWords.ParseStrategy(SplitWords.Word(strategy)));
        foreach (var context in Enum.GetValues<SplitContext>())
            Assert.Equal(context, SplitWords.ParseContext(SplitWords.Word(context)));
        Assert.Equal(SplitStrategy.FlopAwareCirculating, SplitWords.ParseStrategy("FAC"));
        Assert.Equal(SplitContext.Prefix, SplitWords.ParseContext("prefix"));
        var e = Assert.Throws<UserException>(() => SplitWords.ParseStrategy("fca"));
        Assert.Contains("'fca'", e.Message);
        Assert.Contains("none, ae, fa, fac", e.Message);
        Assert.Contains("local, prefix", Assert.Throws<UserException>(() => SplitWords.ParseContext("global")).Message);
    }
}
