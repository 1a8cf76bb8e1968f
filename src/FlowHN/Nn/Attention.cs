using FlowHN.Autograd;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Nn;

/// <summary>
/// Causal multi-head attention with grouped KV heads: q/k/v projections, optional rotary embedding, the
/// flash-style attention kernel, output projection. Tensors stay [B, L, heads, headDim], the layout the
/// projections produce, so no transposes are needed.
/// </summary>
public sealed class Attention : Module, ISequenceMixer
{
    private readonly Linear query, key, value;
    private readonly Linear? output;
    private readonly int heads, kvHeads, headDim;
    private readonly bool rope;

    /// <param name="outputProjection">false leaves out o_proj: the heads' concatenated outputs are returned
    /// (Hymba-style layers project the fused attention and SSM heads once).</param>
    public Attention(ComputeDevice device, string name, int dim, int heads, int kvHeads, bool rope, Random random, double residualStd,
        bool outputProjection = true)
        : base(device, name)
    {
        this.heads = heads;
        this.kvHeads = kvHeads;
        headDim = dim / heads;
        this.rope = rope;
        query = Add(new Linear(device, Child("q_proj"), dim, dim, random));
        key = Add(new Linear(device, Child("k_proj"), dim, kvHeads * headDim, random));
        value = Add(new Linear(device, Child("v_proj"), dim, kvHeads * headDim, random));
        if (outputProjection) output = Add(new Linear(device, Child("o_proj"), dim, dim, random, residualStd));
    }

    public Tensor Forward(Tensor x, SequenceContext context) =>
        Forward(x, x, context.Batch, context.Positions, context.Positions);

    /// <summary>
    /// Queries from <paramref name="queries"/> [B, Lq, d] at positions <paramref name="queryPositions"/>, keys and
    /// values from <paramref name="keys"/> [B, Lk, d] at <paramref name="keyPositions"/>; a key is visible to a
    /// query when its position is not later. With queries for some tokens and keys for all, the routed
    /// tokens of a split block still see their whole causal context.
    /// </summary>
    public Tensor Forward(Tensor queries, Tensor keys, int batch, Tensor queryPositions, Tensor keyPositions)
    {
        int lq = queries.Dim(1), lk = keys.Dim(1);
        var q = Ops.Reshape(query.Forward(queries), batch, lq, heads, headDim);
        var k = Ops.Reshape(key.Forward(keys), batch, lk, kvHeads, headDim);
        var v = Ops.Reshape(value.Forward(keys), batch, lk, kvHeads, headDim);
        if (rope)
        {
            q = Ops.Rope(q, queryPositions);
            k = Ops.Rope(k, keyPositions);
        }
        var attended = Ops.Attention(q, k, v, queryPositions, keyPositions);
        var concatenated = Ops.Reshape(attended, batch, lq, heads * headDim);
        return output is null ? concatenated : output.Forward(concatenated);
    }
}

/// <summary>A pre-norm decoder layer: h = x + mixer(norm(x)); out = h + mlp(norm(h)).</summary>
public sealed class DecoderLayer : Module
{
    private readonly RmsNorm mixerNorm, mlpNorm;
    private readonly ISequenceMixer mixer;
    private readonly SwiGluMlp mlp;

    public DecoderLayer(ComputeDevice device, string name, int dim, int mlpHidden, float eps, Random random, double residualStd,
        Func<string, Module> createMixer, string mixerName)
        : base(device, name)
    {
        mixerNorm = Add(new RmsNorm(device, Child(mixerName + "_norm"), dim, eps));
        var module = Add(createMixer(Child(mixerName)));
        mixer = (ISequenceMixer)module;
        mlpNorm = Add(new RmsNorm(device, Child("mlp_norm"), dim, eps));
        mlp = Add(new SwiGluMlp(device, Child("mlp"), dim, mlpHidden, random, residualStd));
    }

    public Tensor Forward(Tensor x, SequenceContext context)
    {
        var (h, normed) = mlpNorm.ForwardAfterResidual(x, mixer.Forward(mixerNorm.Forward(x), context));
        return Ops.Add(h, mlp.Forward(normed));
    }
}
