using FlowHN.Autograd;
using FlowHN.Inference;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Nn;

/// <summary>Sizes of a Mamba-1 mixer: d_inner = expand * d, dt_rank = ceil(d / 16), d_state 16, conv width 4.</summary>
public sealed record MambaShape(int Dim, int Inner, int DtRank, int State, int ConvWidth)
{
    public static MambaShape For(int dim, int expand = 2, int state = 16, int convWidth = 4) =>
        new(dim, expand * dim, (dim + 15) / 16, state, convWidth);
}

/// <summary>
/// The Mamba-1 mixer as PAPER.md describes it (Jamba's variant, with RMSNorm on dt, B and C):
/// in_proj d -> 2 d_inner (x, z); causal depthwise conv (+bias) then SiLU on x; x_proj -> (dt, B, C), each
/// RMS-normalised; dt_proj dt_rank -> d_inner (its bias is added inside the scan, before the softplus);
/// the selective scan with A = -exp(A_log) and the skip D, gated by silu(z); out_proj d_inner -> d.
/// </summary>
public sealed class MambaMixer : Module, ISequenceMixer
{
    private readonly MambaShape shape;
    private readonly Linear inProj, xProj, dtProj;
    private readonly Linear? outProj;
    private readonly RmsNorm dtNorm, bNorm, cNorm;

    /// <param name="outputProjection">false leaves out out_proj and returns the gated scan output [B, L, d_inner].</param>
    public MambaMixer(Session device, string name, MambaShape shape, float eps, Random random, double residualStd,
        bool outputProjection = true)
        : base(device, name)
    {
        this.shape = shape;
        int inner = shape.Inner, n = shape.State, r = shape.DtRank;
        inProj = Add(new Linear(device, Child("in_proj"), shape.Dim, 2 * inner, random));
        var convBound = ParameterInit.Uniform(1 / Math.Sqrt(shape.ConvWidth));
        ConvWeight = AddParameter("conv1d.weight", [inner, shape.ConvWidth], convBound, weightDecay: true, random);
        ConvBias = AddParameter("conv1d.bias", [inner], convBound, weightDecay: false, random);
        xProj = Add(new Linear(device, Child("x_proj"), inner, r + 2 * n, random));
        dtNorm = Add(new RmsNorm(device, Child("dt_layernorm"), r, eps));
        bNorm = Add(new RmsNorm(device, Child("b_layernorm"), n, eps));
        cNorm = Add(new RmsNorm(device, Child("c_layernorm"), n, eps));
        dtProj = Add(new Linear(device, Child("dt_proj"), r, inner, random));
        dtProj.Weight.Initialise(ParameterInit.Uniform(1 / Math.Sqrt(r)), TensorSeed(random)); // Mamba's "random" dt init, dt_scale 1
        DtBias = AddParameter("dt_proj.bias", [inner], DtBiasInit, weightDecay: false, random);
        ALog = AddParameter("A_log", [inner, n], ParameterInit.FromIndex(i => (float)Math.Log(i % n + 1)), weightDecay: false); // A = -(1..n)
        DSkip = AddParameter("D", [inner], ParameterInit.Constant(1f), weightDecay: false);
        if (outputProjection) outProj = Add(new Linear(device, Child("out_proj"), inner, shape.Dim, random, residualStd));
    }

    public Parameter ConvWeight { get; }
    public Parameter ConvBias { get; }
    public Parameter DtBias { get; }
    public Parameter ALog { get; }
    public Parameter DSkip { get; }

    public Tensor Forward(Tensor x, SequenceContext context)
    {
        int inner = shape.Inner, n = shape.State, r = shape.DtRank;
        var cache = context.Cache as MambaCache;
        var projected = inProj.Forward(x);                       // [B, L, 2 inner]
        Tensor u, convState = null!;
        if (cache is null) u = Ops.CausalConv1d(Ops.SliceLast(projected, 0, inner), ConvWeight, ConvBias, silu: true);
        else (u, convState) = Ops.CausalConv1dWithState(Ops.SliceLast(projected, 0, inner), ConvWeight, ConvBias, silu: true, cache.Conv);
        var z = Ops.SliceLast(projected, inner, inner);
        var dbc = xProj.Forward(u);                              // [B, L, r + 2n]
        var dt = dtNorm.Forward(Ops.SliceLast(dbc, 0, r));
        var b = bNorm.Forward(Ops.SliceLast(dbc, r, n));
        var c = cNorm.Forward(Ops.SliceLast(dbc, r + n, n));
        var delta = dtProj.Forward(dt);                          // softplus(delta + bias) happens in the scan
        Tensor y;
        if (cache is null) y = Ops.SelectiveScan(u, delta, DtBias, ALog, b, c, DSkip, z);
        else
        {
            // Inference: continue from the cached states and keep the ones this segment ends with.
            (y, var scanState) = Ops.SelectiveScanWithState(u, delta, DtBias, ALog, b, c, DSkip, z, cache.Ssm);
            cache.Update(convState, scanState);
        }
        return outProj is null ? y : outProj.Forward(y);
    }

    /// <summary>Bias whose softplus is log-uniform in [1e-3, 1e-1]: the inverse softplus of such a dt.</summary>
    private static readonly ParameterInit DtBiasInit = ParameterInit.Draw(random =>
    {
        double dt = Math.Exp(Math.Log(1e-3) + random.NextDouble() * (Math.Log(1e-1) - Math.Log(1e-3)));
        return dt + Math.Log(1 - Math.Exp(-dt)); // softplus^-1(dt) = dt + log(1 - e^-dt)
    });
}
