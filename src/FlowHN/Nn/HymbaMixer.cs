using FlowHN.Autograd;
using FlowHN.Inference;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Nn;

/// <summary>
/// Hymba-style parallel heads (PAPER.md): attention heads and SSM heads read the same tokens in one layer; each
/// branch's output is RMS-normalised separately, the two are averaged, and one output projection follows.
/// The SSM runs with d_inner = d (expand 1) so both branches produce d features, as the averaging needs.
/// </summary>
public sealed class HymbaMixer : Module, ISequenceMixer
{
    private readonly Attention attention;
    private readonly ISequenceMixer ssm;
    private readonly RmsNorm attentionNorm, ssmNorm;
    private readonly Linear output;

    public HymbaMixer(Session device, string name, int dim, int heads, int kvHeads, MambaShape ssmShape, float eps,
        Random random, double residualStd)
        : this(device, name, dim, heads, kvHeads, ssmShape.Inner, eps, random, residualStd,
            (m, child) => new MambaMixer(device, child("mamba"), ssmShape, eps, random, residualStd, outputProjection: false))
    {
    }

    /// <summary>Hymba with Mamba-2 SSM heads (<c>--ssm mamba2</c>), named <c>mamba2</c>.</summary>
    public HymbaMixer(Session device, string name, int dim, int heads, int kvHeads, Mamba2Shape ssmShape, float eps,
        Random random, double residualStd)
        : this(device, name, dim, heads, kvHeads, ssmShape.Inner, eps, random, residualStd,
            (m, child) => new Mamba2Mixer(device, child("mamba2"), ssmShape, eps, random, residualStd, outputProjection: false))
    {
    }

    private HymbaMixer(Session device, string name, int dim, int heads, int kvHeads, int ssmInner, float eps, Random random,
        double residualStd, Func<HymbaMixer, Func<string, string>, Module> createSsm) : base(device, name)
    {
        if (ssmInner != dim) throw new ArgumentException($"Hymba needs the SSM's d_inner ({ssmInner}) equal to dim ({dim}).");
        attention = Add(new Attention(device, Child("attn"), dim, heads, kvHeads, rope: false, random, residualStd, outputProjection: false));
        ssm = (ISequenceMixer)Add(createSsm(this, Child));
        attentionNorm = Add(new RmsNorm(device, Child("attn_out_norm"), dim, eps));
        ssmNorm = Add(new RmsNorm(device, Child("ssm_out_norm"), dim, eps));
        output = Add(new Linear(device, Child("out_proj"), dim, dim, random, residualStd));
    }

    public Tensor Forward(Tensor x, SequenceContext context)
    {
        var cache = context.Cache as HybridCache;
        var attended = Segments.Run(Device, context.Observer, SegmentKind.Attention,
            () => attentionNorm.Forward(attention.Forward(x, cache is null ? context : context with { Cache = cache.Attention })));
        var scanned = Segments.Run(Device, context.Observer, SegmentKind.Ssm,
            () => ssmNorm.Forward(ssm.Forward(x, cache is null ? context : context with { Cache = cache.Mamba })));
        return output.Forward(Ops.Scale(Ops.Add(attended, scanned), 0.5f));
    }

    public HybridCache CreateCache() => new(attention.CreateCache(), new MambaCache());
}
