using FlowHN.Autograd;
using FlowHN.Inference;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Nn;

/// <summary>
/// Sizes of a Mamba-2 mixer: d_inner = expand * d split into heads of HeadDim, B and C shared by Groups groups of
/// heads, d_state States, conv width 4 over x, B and C together, the SSD chunk length Chunk.
/// </summary>
public sealed record Mamba2Shape(int Dim, int Inner, int HeadDim, int Groups, int States, int ConvWidth, int Chunk)
{
    public int Heads => Inner / HeadDim;
    /// <summary>Channels of the convolution: x, B and C.</summary>
    public int ConvChannels => Inner + 2 * Groups * States;
    /// <summary>Outputs of in_proj: z, x, B, C and one dt per head.</summary>
    public int InProjection => 2 * Inner + 2 * Groups * States + Heads;

    /// <summary>
    /// The Mamba-2 paper's sizes from the model width: head dim 64 and d_state 64 (128 from d = 1024 up), one group,
    /// expand 2; narrow models (the tiny preset) take head dim 32 and d_state 16 so they train quickly on a CPU.
    /// </summary>
    public static Mamba2Shape For(int dim, int expand = 2, int convWidth = 4)
    {
        int inner = expand * dim;
        int headDim = dim >= 512 ? 64 : 32, states = dim >= 1024 ? 128 : dim >= 512 ? 64 : 16;
        if (inner % headDim != 0) headDim = inner; // one head when the width does not split
        return new Mamba2Shape(dim, inner, headDim, Groups: 1, states, convWidth, Chunk: 64);
    }
}

/// <summary>
/// The Mamba-2 mixer (Dao and Gu 2024), named as mamba_ssm's Mamba2 module: in_proj d -> (z, x, B, C, dt); a
/// causal depthwise conv (+bias) then SiLU on x, B and C together; the SSD scan with A = -exp(A_log) per head,
/// dt = softplus(dt + dt_bias) and the skip D; the gated RMSNorm norm(y * silu(z)); out_proj d_inner -> d.
/// The norm runs over all of d_inner (the reference's group size at ngroups = 1).
/// </summary>
public sealed class Mamba2Mixer : Module, ISequenceMixer
{
    private readonly Mamba2Shape shape;
    private readonly Linear inProj;
    private readonly Linear? outProj;
    private readonly RmsNorm norm;

    /// <param name="outputProjection">false leaves out out_proj and returns the gated, normalised y [B, L, d_inner] (Hymba).</param>
    public Mamba2Mixer(Session device, string name, Mamba2Shape shape, float eps, Random random, double residualStd,
        bool outputProjection = true)
        : base(device, name)
    {
        this.shape = shape;
        int inner = shape.Inner, heads = shape.Heads;
        inProj = Add(new Linear(device, Child("in_proj"), shape.Dim, shape.InProjection, random));
        var convBound = ParameterInit.Uniform(1 / Math.Sqrt(shape.ConvWidth));
        ConvWeight = AddParameter("conv1d.weight", [shape.ConvChannels, shape.ConvWidth], convBound, weightDecay: true, random);
        ConvBias = AddParameter("conv1d.bias", [shape.ConvChannels], convBound, weightDecay: false, random);
        DtBias = AddParameter("dt_bias", [heads], DtBiasInit, weightDecay: false, random);
        // A drawn uniformly from [1, 16] per head, as mamba_ssm's A_init_range.
        ALog = AddParameter("A_log", [heads], ParameterInit.Draw(r => Math.Log(1 + 15 * r.NextDouble())), weightDecay: false, random);
        DSkip = AddParameter("D", [heads], ParameterInit.Constant(1f), weightDecay: false);
        norm = Add(new RmsNorm(device, Child("norm"), inner, eps));
        if (outputProjection) outProj = Add(new Linear(device, Child("out_proj"), inner, shape.Dim, random, residualStd));
    }

    public Parameter ConvWeight { get; }
    public Parameter ConvBias { get; }
    public Parameter DtBias { get; }
    public Parameter ALog { get; }
    public Parameter DSkip { get; }

    public Tensor Forward(Tensor x, SequenceContext context)
    {
        int inner = shape.Inner, heads = shape.Heads, gn = shape.Groups * shape.States;
        int batch = x.Dim(0), length = x.Dim(1);
        var cache = context.Cache as MambaCache;
        var projected = inProj.Forward(x);                                   // [B, L, z | x B C | dt]
        var z = Ops.SliceLast(projected, 0, inner);
        var xbcIn = Ops.SliceLast(projected, inner, shape.ConvChannels);
        var dt = Ops.SliceLast(projected, inner + shape.ConvChannels, heads); // softplus(dt + dt_bias) happens in the scan
        Tensor xbc, convState = null!;
        if (cache is null) xbc = Ops.CausalConv1d(xbcIn, ConvWeight, ConvBias, silu: true);
        else (xbc, convState) = Ops.CausalConv1dWithState(xbcIn, ConvWeight, ConvBias, silu: true, cache.Conv);
        var xs = Ops.Reshape(Ops.SliceLast(xbc, 0, inner), batch, length, heads, shape.HeadDim);
        var b = Ops.Reshape(Ops.SliceLast(xbc, inner, gn), batch, length, shape.Groups, shape.States);
        var c = Ops.Reshape(Ops.SliceLast(xbc, inner + gn, gn), batch, length, shape.Groups, shape.States);
        Tensor y;
        if (cache is null) y = Ops.Ssd(xs, dt, DtBias, ALog, b, c, DSkip, chunk: shape.Chunk);
        else
        {
            // Inference: continue from the cached states and keep the ones this segment ends with.
            (y, var ssmState) = Ops.SsdWithState(xs, dt, DtBias, ALog, b, c, DSkip, cache.Ssm, shape.Chunk);
            cache.Update(convState, ssmState);
        }
        var gated = Ops.Mul(Ops.Reshape(y, batch, length, inner), Ops.Silu(z));
        var normed = norm.Forward(gated);
        return outProj is null ? normed : outProj.Forward(normed);
    }

    /// <summary>Bias whose softplus is log-uniform in [1e-3, 1e-1]: the inverse softplus of such a dt.</summary>
    private static readonly ParameterInit DtBiasInit = ParameterInit.Draw(random =>
    {
        double dt = Math.Exp(Math.Log(1e-3) + random.NextDouble() * (Math.Log(1e-1) - Math.Log(1e-3)));
        return dt + Math.Log(1 - Math.Exp(-dt)); // softplus^-1(dt) = dt + log(1 - e^-dt)
    });
}
