using FlowHN.Autograd;
using FlowHN.Diagnostics;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Tests.Kernels;

/// <summary>The routing ops on real split plans: rows land where the plan says, and come back.</summary>
public class RoutingTests
{
    private const int Batch = 2, SeqLen = 11, Dim = 5;

    private static Tensor Sequence(Session d, int seed) =>
        Tensor.FromArray(d, Reference.Random(Batch * SeqLen * Dim, seed), Batch, SeqLen, Dim);

    private static Tensor Ints(Session d, int[] data) => Tensor.FromArray(d, data, data.Length);

    public static IEnumerable<object[]> SplitPlans() =>
        from strategy in new[] { SplitStrategy.AlternatingEqual, SplitStrategy.FlopAware, SplitStrategy.FlopAwareCirculating }
        from context in Enum.GetValues<SplitContext>()
        from block in new[] { 0, 1, 2 }
        select new object[] { strategy, context, block };

    [Theory]
    [MemberData(nameof(TestDevice.Both), MemberType = typeof(TestDevice))]
    public void GatherTokensTakesThePlannedRows(string device)
    {
        var d = TestDevice.Get(device);
        using var scope = d.BeginScope();
        // fac's SSM rows in block 1 are not one run: [0..4] and [8..10].
        var positions = SplitPlanner.Plan(SplitStrategy.FlopAwareCirculating, SplitContext.Local, 1, 3, SeqLen, 3).SsmPositions;
        Assert.Equal([0, 1, 2, 3, 4, 8, 9, 10], positions);
        var x = Sequence(d, 1);
        var y = Ops.GatherTokens(x, Ints(d, positions));
        Assert.Equal([Batch, positions.Length, Dim], y.Shape);
        Reference.AssertClose(y.ToArray(), HostReference.GatherTokens(x.ToArray(), Batch, SeqLen, Dim, positions), 1e-7);
    }

    [Theory]
    [MemberData(nameof(SplitPlans))]
    public void MergedBranchOutputsLandAtTheirTokensPositions(SplitStrategy strategy, SplitContext context, int block)
    {
        var d = TestDevice.Cpu;
        using var scope = d.BeginScope();
        var r = SplitPlanner.Plan(strategy, context, block, 3, SeqLen, 4);
        var (attention, ssm) = (Ints(d, r.AttentionPositions), Ints(d, r.SsmPositions));
        var x = Sequence(d, 2);
        // Different scales per branch, so a row put back at the wrong place or by the wrong branch shows.
        var merged = Ops.MergeTokens(Ops.Scale(Ops.GatherTokens(x, attention), 2f), attention,
            Ops.Scale(Ops.GatherTokens(x, ssm), -3f), ssm, SeqLen).ToArray();
        var input = x.ToArray();
        var attentionRows = r.AttentionPositions.ToHashSet();
        for (int b = 0; b < Batch; b++)
            for (int t = 0; t < SeqLen; t++)
                for (int j = 0; j < Dim; j++)
                {
                    int i = (b * SeqLen + t) * Dim + j;
                    Assert.Equal(input[i] * (attentionRows.Contains(t) ? 2f : -3f), merged[i]);
                }
    }

    [Fact]
    public void MismatchedPartsAndPositionsAreRejected()
    {
        var d = TestDevice.Cpu;
        using var scope = d.BeginScope();
        var x = Sequence(d, 3);
        var first = Ops.GatherTokens(x, Ints(d, [0, 1, 2]));
        var second = Ops.GatherTokens(x, Ints(d, [3, 4, 5, 6, 7, 8, 9, 10]));
        Assert.Contains("do not fill", Assert.Throws<ArgumentException>(() =>
            Ops.MergeTokens(first, Ints(d, [0, 1, 2]), second, Ints(d, [3, 4, 5, 6, 7, 8, 9, 10]), SeqLen + 1)).Message);
        Assert.Contains("do not match", Assert.Throws<ArgumentException>(() =>
            Ops.MergeTokens(first, Ints(d, [0, 1]), second, Ints(d, [2, 3, 4, 5, 6, 7, 8, 9, 10]), SeqLen)).Message);
        Assert.Throws<ArgumentException>(() => Ops.GatherTokens(x, Tensor.FromArray(d, [0f, 1f], 2)));
        Assert.Throws<ArgumentException>(() => Ops.GatherTokens(x, Ints(d, Enumerable.Range(0, SeqLen + 1).ToArray())));
    }

    [Fact]
    public void RoutingTablesUploadEachBlockOnceAndOutliveStepScopes()
    {
        var d = TestDevice.Cpu;
        int solves = 0;
        using var tables = new RoutingTables(d, SplitStrategy.FlopAwareCirculating, SplitContext.Prefix, 3, seqLen =>
        {
            solves++;
            return seqLen / 4;
        });
        BlockTables first;
        using (d.BeginScope()) first = tables.For(1, 16);
        // The step scope is gone; the positions must still be on the device.
        Assert.Equal([8, 9, 10, 11], first.AttentionPositions.ToIntArray());
        Assert.Equal(first.Routing.SsmPositions, first.SsmPositions.ToIntArray());
        Assert.Equal(Enumerable.Range(0, 16), tables.AllPositions(16).ToIntArray());

        long allocations = d.Runtime.Allocator.DriverAllocations, inUse = d.Runtime.Allocator.BytesInUse;
        using (d.BeginScope())
        {
            Assert.Same(first, tables.For(1, 16));
            Assert.Same(tables.AllPositions(16), tables.AllPositions(16));
        }
        Assert.Equal(allocations, d.Runtime.Allocator.DriverAllocations);
        Assert.Equal(inUse, d.Runtime.Allocator.BytesInUse);
        Assert.Equal(1, solves);
        Assert.NotSame(first, tables.For(2, 16));
        Assert.Equal(1, solves);
        Assert.Equal([6, 7], tables.For(0, 8).AttentionPositions.ToIntArray());
        Assert.Equal(2, solves);
    }
}
