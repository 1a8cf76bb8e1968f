using FlowHN.Autograd;
using FlowHN.Inference;
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

    public ParallelBlock(Session device, string name, int index, ModelConfig c, bool concatFusion, Random random, double residualStd)
        : base(device, name)
    {
        this.index = index;
        dim = c.Dim;
        attentionBranch = Add(new AttentionLayer(device, Child("attn_branch"), c.Dim, c.Heads, c.KvHeads, c.MlpHidden, c.Rope, c.NormEps,
            random, residualStd));
        ssmBranch = Add(SsmLayer(device, Child("ssm_branch"), c, random, residualStd));
        int fusedWidth = concatFusion ? 2 * c.Dim : c.Dim;
        fuseBranches = AddParameter("fusion.w_b.weight", [c.Dim, fusedWidth], ParameterInit.Normal(residualStd), weightDecay: true, random);
        fusionNorm = Add(new RmsNorm(device, Child("fusion.norm"), c.Dim, c.NormEps));
        fuseOut = AddParameter("fusion.w_f.weight", [c.Dim, c.Dim], ParameterInit.Normal(residualStd), weightDecay: true, random);
    }

    /// <summary>The SSM branch: a pre-norm decoder layer around the Mamba-1 or Mamba-2 mixer <c>--ssm</c> chose.</summary>
    internal static DecoderLayer SsmLayer(Session device, string name, ModelConfig c, Random random, double residualStd) =>
        c.Ssm == SsmKind.Mamba2
            ? new DecoderLayer(device, name, c.Dim, c.MlpHidden, c.NormEps, random, residualStd,
                n => new Mamba2Mixer(device, n, c.Mamba2, c.NormEps, random, residualStd), "mamba2")
            : new DecoderLayer(device, name, c.Dim, c.MlpHidden, c.NormEps, random, residualStd,
                n => new MambaMixer(device, n, c.Mamba, c.NormEps, random, residualStd), "mamba");

    /// <summary>
    /// Training and full-sequence forward: fork, the attention branch and the SSM branch (concurrently on the two
    /// branch streams when <paramref name="streams"/> are given, forward and backward), join, fuse.
    /// </summary>
    public Tensor Forward(Tensor x, int batch, RoutingTables routing, BranchStreams? streams, ISegmentObserver? observer = null)
    {
        int seqLen = x.Dim(1);
        var all = routing.AllPositions(seqLen);
        var tables = routing.Strategy == SplitStrategy.None ? null : routing.For(index, seqLen);
        var branches = ForkedBranches.Fork(Device, x, streams, observer);
        var attended = branches.First(SegmentKind.Attention, input => AttentionBranch(input, batch, routing.Context, tables, all));
        var scanned = branches.Second(SegmentKind.Ssm, input => SsmBranch(input, batch, tables, all));
        branches.Join();
        return tables is null
            ? FuseBoth(x, attended!, scanned!)
            : FuseSplit(x, attended, tables.AttentionPositions, scanned, tables.SsmPositions);
    }

    /// <summary>
    /// Inference on one sequence (batch 1): the block on a chunk of tokens at absolute positions
    /// start..start+L-1, continuing from the cache. Each token goes to the branch <paramref name="byPosition"/>
    /// gives its position (null: no split, both branches). The attention branch appends the keys it may later
    /// need (prefix: every token's; local: its own tokens'; no split: every token's); the SSM branch continues its
    /// conv and scan states over its own tokens, in order, as the full forward's scan over its gathered tokens does.
    /// </summary>
    public Tensor ForwardCached(Tensor x, int start, PositionRouting? byPosition, SplitContext context, HybridCache cache)
    {
        int length = x.Dim(1);
        var all = Positions(Enumerable.Range(start, length).ToArray());
        if (byPosition is null)
        {
            var attendedAll = attentionBranch.ForwardCached(x, all, null, all, cache.Attention)!;
            var scannedAll = ssmBranch.Forward(x, new SequenceContext(1, length, all, cache.Mamba));
            return FuseBoth(x, attendedAll, scannedAll);
        }
        var (attentionRows, ssmRows) = byPosition.Chunk(index, start, length);
        var attentionIndex = Positions(attentionRows);
        var attentionAt = Positions(attentionRows.Select(i => start + i).ToArray());
        var attentionTokens = attentionRows.Length == 0 ? null : Ops.GatherTokens(x, attentionIndex);
        var attended = context == SplitContext.Prefix
            ? attentionBranch.ForwardCached(attentionTokens, attentionAt, x, all, cache.Attention)
            : attentionTokens is null ? null : attentionBranch.ForwardCached(attentionTokens, attentionAt, null, attentionAt, cache.Attention);
        var ssmIndex = Positions(ssmRows);
        Tensor? scanned = null;
        if (ssmRows.Length > 0)
        {
            var ssmTokens = Ops.GatherTokens(x, ssmIndex);
            scanned = ssmBranch.Forward(ssmTokens,
                new SequenceContext(1, ssmRows.Length, Positions(ssmRows.Select(i => start + i).ToArray()), cache.Mamba));
        }
        return FuseSplit(x, attended, attentionIndex, scanned, ssmIndex);
    }

    public HybridCache CreateCache() => new(attentionBranch.CreateCache(), new MambaCache());

    private Tensor Positions(int[] positions) => positions.Length == 0
        ? Tensor.Empty(Device, [0], DType.Int32)
        : Tensor.FromArray(Device, positions, positions.Length);

    /// <summary>No split: y = x + W_b [ssm ; attn], out = y + W_f RMSNorm(y).</summary>
    private Tensor FuseBoth(Tensor x, Tensor attended, Tensor scanned) =>
        // W_b [ssm ; attn] as two products with the halves of W_b: no concatenated tensor is needed.
        FuseOut(x, Ops.Add(Ops.Linear(scanned, Ops.SliceLast(fuseBranches, 0, dim)),
            Ops.Linear(attended, Ops.SliceLast(fuseBranches, dim, dim))));

    /// <summary>Split: the branches' rows put back at their positions (one branch may be absent), then fused.</summary>
    private Tensor FuseSplit(Tensor x, Tensor? attended, Tensor attentionRows, Tensor? scanned, Tensor ssmRows)
    {
        var merged = attended is null ? scanned!
            : scanned is null ? attended
            : Ops.MergeTokens(attended, attentionRows, scanned, ssmRows, x.Dim(1));
        return FuseOut(x, Ops.Linear(merged, fuseBranches));
    }

    private Tensor FuseOut(Tensor x, Tensor fused)
    {
        var y = Ops.Add(x, fused);
        return Ops.Add(y, Ops.Linear(fusionNorm.Forward(y), fuseOut));
    }

    /// <summary>
    /// The attention branch on its routed tokens (every token with no split). Routing by position (inference) may
    /// leave a branch without a token in a short sequence: it is then skipped (null), here and in the SSM branch.
    /// </summary>
    private Tensor? AttentionBranch(Tensor x, int batch, SplitContext context, BlockTables? tables, Tensor all)
    {
        if (tables is null) return attentionBranch.Forward(x, batch, all, null, all);
        if (tables.Routing.AttentionPositions.Length == 0) return null;
        var tokens = Ops.GatherTokens(x, tables.AttentionPositions);
        return context == SplitContext.Prefix
            ? attentionBranch.Forward(tokens, batch, tables.AttentionPositions, x, all)
            : attentionBranch.Forward(tokens, batch, tables.AttentionPositions, null, tables.AttentionPositions);
    }

    private Tensor? SsmBranch(Tensor x, int batch, BlockTables? tables, Tensor all)
    {
        // The SSM scans its tokens in order; with a split they may be non-contiguous (state carried across gaps).
        if (tables is null) return ssmBranch.Forward(x, new SequenceContext(batch, x.Dim(1), all));
        if (tables.Routing.SsmPositions.Length == 0) return null;
        var tokens = Ops.GatherTokens(x, tables.SsmPositions);
        return ssmBranch.Forward(tokens, new SequenceContext(batch, tokens.Dim(1), tables.SsmPositions));
    }
}
