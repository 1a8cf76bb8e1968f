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
        fuseBranches = AddParameter("fusion.w_b.weight", [c.Dim, fusedWidth], NormalInit(random, (long)c.Dim * fusedWidth, residualStd),
            weightDecay: true);
        fusionNorm = Add(new RmsNorm(device, Child("fusion.norm"), c.Dim, c.NormEps));
        fuseOut = AddParameter("fusion.w_f.weight", [c.Dim, c.Dim], NormalInit(random, (long)c.Dim * c.Dim, residualStd), weightDecay: true);
    }

    public Tensor Forward(Tensor x, int batch, RoutingTables routing)
    {
        int seqLen = x.Dim(1);
        var all = routing.AllPositions(seqLen);
        Tensor y;
        if (routing.Strategy == SplitStrategy.None)
        {
            var attended = attentionBranch.Forward(x, batch, all, null, all);
            var scanned = ssmBranch.Forward(x, new SequenceContext(batch, seqLen, all));
            // W_b [ssm ; attn] as two products with the halves of W_b: no concatenated tensor is needed.
            var fused = Ops.Add(Ops.Linear(scanned, Ops.SliceLast(fuseBranches, 0, dim)),
                                Ops.Linear(attended, Ops.SliceLast(fuseBranches, dim, dim)));
            y = Ops.Add(x, fused);
        }
        else
        {
            var tables = routing.For(index, seqLen);
            var attentionTokens = Ops.GatherTokens(x, tables.AttentionPositions);
            var attended = routing.Context == SplitContext.Prefix
                ? attentionBranch.Forward(attentionTokens, batch, tables.AttentionPositions, x, all)
                : attentionBranch.Forward(attentionTokens, batch, tables.AttentionPositions, null, tables.AttentionPositions);
            var ssmTokens = Ops.GatherTokens(x, tables.SsmPositions);
            var scanned = ssmBranch.Forward(ssmTokens, new SequenceContext(batch, ssmTokens.Dim(1), tables.SsmPositions));
            var merged = Ops.MergeTokens(attended, tables.AttentionPositions, scanned, tables.SsmPositions, seqLen);
            y = Ops.Add(x, Ops.Linear(merged, fuseBranches));
        }
        return Ops.Add(y, Ops.Linear(fusionNorm.Forward(y), fuseOut));
    }
}
