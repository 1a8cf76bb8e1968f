using FlowHN.Autograd;
using FlowHN.Nn;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Models;

/// <summary>
/// One FlowHN block (PAPER.md): an attention branch and a Mamba branch, each a full pre-norm decoder layer,
/// side by side, then fusion. With no split both branches see every token and their outputs are concatenated
/// along features: y = x + W_b [ssm ; attn] (W_b: 2d -> d). With a split each branch gets its routed tokens,
/// their outputs are put back at the original positions and y = x + W_b merged (W_b: d -> d). Then
/// out = y + W_f RMSNorm(y). No gates, no biases.
/// </summary>
public sealed class ParallelBlock : Module
{
    private readonly int index;
    private readonly AttentionLayer attentionBranch;
    private readonly DecoderLayer ssmBranch;
    private readonly RmsNorm fusionNorm;
    private readonly Parameter fuseBranches, fuseOut;
    private readonly int dim;

    public ParallelBlock(ComputeDevice device, string name, int index, ModelConfig c, bool concatFusion, Random random, double residualStd)
        : base(device, name)
    {
        this.index = index;
        dim = c.Dim;
        attentionBranch = Add(new AttentionLayer(device, Child("attn_branch"), c.Dim, c.Heads, c.KvHeads, c.MlpHidden, c.Rope, c.NormEps,
            random, residualStd));
        ssmBranch = Add(new DecoderLayer(device, Child("ssm_branch"), c.Dim, c.MlpHidden, c.NormEps, random, residualStd,
            n => new MambaMixer(device, n, c.Mamba, c.NormEps, random, residualStd), "mamba"));
        int fusedWidth = concatFusion ? 2 * c.Dim : c.Dim;
        fuseBranches = AddParameter("fusion.w_b.weight", [c.Dim, fusedWidth], ParameterInit.Normal(residualStd), weightDecay: true, random);
        fusionNorm = Add(new RmsNorm(device, Child("fusion.norm"), c.Dim, c.NormEps));
        fuseOut = AddParameter("fusion.w_f.weight", [c.Dim, c.Dim], ParameterInit.Normal(residualStd), weightDecay: true, random);
    }

    /// <summary>
    /// Runs both branches and fuses them. With <paramref name="streams"/> the branches run concurrently on the
    /// two branch streams (forward and backward). Each branch reads its own alias of x, so the two backward
    /// passes accumulate into separate gradient buffers, summed on the main stream after the join; the aliases
    /// are used without streams too, so the sums happen in the same order and results are bitwise identical.
    /// </summary>
    public Tensor Forward(Tensor x, int batch, RoutingTables routing, BranchStreams? streams, BranchProfile? profile = null)
    {
        int seqLen = x.Dim(1);
        var all = routing.AllPositions(seqLen);
        bool split = routing.Strategy != SplitStrategy.None;
        var tables = split ? routing.For(index, seqLen) : null;
        var attentionInput = Ops.Reshape(x, x.Shape);
        var ssmInput = Ops.Reshape(x, x.Shape);
        int profiled = profile?.BeginBlock() ?? -1;
        streams?.Fork();
        Tensor attended, scanned;
        using (streams is null ? null : Device.UseStream(streams.First))
        {
            profile?.AttentionStart(profiled);
            attended = AttentionBranch(attentionInput, batch, routing.Context, tables, all);
            profile?.AttentionEnd(profiled);
        }
        using (streams is null ? null : Device.UseStream(streams.Second))
        {
            profile?.SsmStart(profiled);
            scanned = SsmBranch(ssmInput, batch, tables, all);
            profile?.SsmEnd(profiled);
        }
        streams?.Join();
        profile?.EndBlock(profiled);

        Tensor fused = split
            ? Ops.Linear(Ops.MergeTokens(attended, tables!.AttentionPositions, scanned, tables.SsmPositions, seqLen), fuseBranches)
            // W_b [ssm ; attn] as two products with the halves of W_b: no concatenated tensor is needed.
            : Ops.Add(Ops.Linear(scanned, Ops.SliceLast(fuseBranches, 0, dim)), Ops.Linear(attended, Ops.SliceLast(fuseBranches, dim, dim)));
        var y = Ops.Add(x, fused);
        return Ops.Add(y, Ops.Linear(fusionNorm.Forward(y), fuseOut));
    }

    private Tensor AttentionBranch(Tensor x, int batch, SplitContext context, BlockTables? tables, Tensor all)
    {
        if (tables is null) return attentionBranch.Forward(x, batch, all, null, all);
        var tokens = Ops.GatherTokens(x, tables.AttentionPositions);
        return context == SplitContext.Prefix
            ? attentionBranch.Forward(tokens, batch, tables.AttentionPositions, x, all)
            : attentionBranch.Forward(tokens, batch, tables.AttentionPositions, null, tables.AttentionPositions);
    }

    private Tensor SsmBranch(Tensor x, int batch, BlockTables? tables, Tensor all)
    {
        // The SSM scans its tokens in order; with a split they may be non-contiguous (state carried across gaps).
        if (tables is null) return ssmBranch.Forward(x, new SequenceContext(batch, x.Dim(1), all));
        var tokens = Ops.GatherTokens(x, tables.SsmPositions);
        return ssmBranch.Forward(tokens, new SequenceContext(batch, tokens.Dim(1), tables.SsmPositions));
    }
}
