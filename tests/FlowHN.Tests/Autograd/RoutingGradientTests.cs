using FlowHN.Autograd;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Tensors;

using static FlowHN.Tests.GradientAssert;

namespace FlowHN.Tests.Autograd;

/// <summary>Finite-difference checks of the token routing ops on a fac plan (scattered positions).</summary>
public class RoutingGradientTests
{
    private const int Batch = 2, SeqLen = 9, Dim = 3;
    private static Session Device => TestDevice.Cpu;

    // Block 1 of fac with 3 attention tokens in 9: attention [3, 4, 5], the SSM [0, 1, 2, 6, 7, 8].
    private static readonly BlockRouting Plan =
        SplitPlanner.Plan(SplitStrategy.FlopAwareCirculating, SplitContext.Local, 1, 3, SeqLen, 3);

    private static Tensor Positions(int[] positions) =>
        Tensor.FromArray(Device, positions, [positions.Length], persistent: true);

    [Fact]
    public void GatherTokens()
    {
        using var ssm = Positions(Plan.SsmPositions);
        var x = Input(1, Batch, SeqLen, Dim);
        AssertGradients(() => Ops.GatherTokens(x, ssm), x);
    }

    [Fact]
    public void MergeTokensWithRespectToBothParts()
    {
        using var attention = Positions(Plan.AttentionPositions);
        using var ssm = Positions(Plan.SsmPositions);
        var a = Input(2, Batch, Plan.AttentionPositions.Length, Dim);
        var s = Input(3, Batch, Plan.SsmPositions.Length, Dim);
        AssertGradients(() => Ops.MergeTokens(a, attention, s, ssm, SeqLen), a, s);
    }

    [Fact]
    public void SplitThenMergeWithDifferentBranchesFlowsBackToTheInput()
    {
        using var attention = Positions(Plan.AttentionPositions);
        using var ssm = Positions(Plan.SsmPositions);
        var x = Input(4, Batch, SeqLen, Dim);
        // Non-linear, different branches, so the gradient of each token depends on which branch it went to.
        AssertGradients(() => Ops.MergeTokens(Ops.Silu(Ops.GatherTokens(x, attention)), attention,
            Ops.Scale(Ops.GatherTokens(x, ssm), -2f), ssm, SeqLen), x);
    }
}
