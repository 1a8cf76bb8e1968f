using FlowHN.Autograd;
using FlowHN.Inference;
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
    public Attention(Session device, string name, int dim, int heads, int kvHeads, bool rope, Random random, double residualStd,
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

    public Tensor Forward(Tensor x, SequenceContext context) => context.Cache is AttentionCache cache
        ? ForwardCached(x, x, context.Positions, context.Positions, cache)!
        : Forward(x, x, context.Batch, context.Positions, context.Positions);

    /// <summary>
    /// Inference (batch 1): appends the keys and values of <paramref name="newKeys"/> [1, n, d] at
    /// <paramref name="newKeyPositions"/> (host copy needed) to the cache, then lets the queries of
    /// <paramref name="queries"/> (null: none, only the keys are recorded) attend to every cached key that is not
    /// later. With the whole sequence at once this is the uncached forward; one token at a time it is decoding.
    /// </summary>
    public Tensor? ForwardCached(Tensor? queries, Tensor? newKeys, Tensor queryPositions, Tensor newKeyPositions, AttentionCache cache)
    {
        if (newKeys is not null)
        {
            int lk = newKeys.Dim(1);
            var k = Ops.Reshape(key.Forward(newKeys), 1, lk, kvHeads, headDim);
            var v = Ops.Reshape(value.Forward(newKeys), 1, lk, kvHeads, headDim);
            if (rope) k = Ops.Rope(k, newKeyPositions);
            cache.Append(k, v, newKeyPositions.HostInts
                ?? throw new ArgumentException("Attention.ForwardCached: key positions need their host copy."));
        }
        if (queries is null) return null;
        int lq = queries.Dim(1);
        var q = Ops.Reshape(query.Forward(queries), 1, lq, heads, headDim);
        if (rope) q = Ops.Rope(q, queryPositions);
        var attended = Ops.Attention(q, cache.Keys, cache.Values, queryPositions, cache.Positions);
        var concatenated = Ops.Reshape(attended, 1, lq, heads * headDim);
        return output is null ? concatenated : output.Forward(concatenated);
    }

    /// <summary>An empty cache shaped for this layer's keys and values.</summary>
    public AttentionCache CreateCache(int capacity = 64) => new(Device, kvHeads, headDim, capacity);

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

    public DecoderLayer(Session device, string name, int dim, int mlpHidden, float eps, Random random, double residualStd,
        Func<string, Module> createMixer, string mixerName)
        : base(device, name)
    {
        mixerNorm = Add(new RmsNorm(device, Child(mixerName + "_norm"), dim, eps));
        var module = Add(createMixer(Child(mixerName)));
        mixer = (ISequenceMixer)module;
        mlpNorm = Add(new RmsNorm(device, Child("mlp_norm"), dim, eps));
        mlp = Add(new SwiGluMlp(device, Child("mlp"), dim, mlpHidden, random, residualStd));
    }

    /// <summary>An empty inference cache for this layer's mixer.</summary>
    public ILayerCache CreateCache() => mixer switch
    {
        Attention attention => attention.CreateCache(),
        HymbaMixer hymba => hymba.CreateCache(),
        _ => new MambaCache(),
    };

    public Tensor Forward(Tensor x, SequenceContext context)
    {
        var (h, normed) = mlpNorm.ForwardAfterResidual(x, mixer.Forward(mixerNorm.Forward(x), context));
        return Ops.Add(h, mlp.Forward(normed));
    }
}
