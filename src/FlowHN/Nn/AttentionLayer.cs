using FlowHN.Autograd;
using FlowHN.Inference;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Nn;

/// <summary>
/// A pre-norm attention decoder layer that can run on a subset of the tokens:
/// h = x_q + attn(norm(x_q), norm(x_k)); out = h + mlp(norm(h)), where x_q are the routed tokens and x_k the
/// tokens whose keys they may see (the routed tokens themselves, or the whole sequence).
/// </summary>
public sealed class AttentionLayer : Module
{
    private readonly RmsNorm attentionNorm, mlpNorm;
    private readonly Attention attention;
    private readonly SwiGluMlp mlp;

    public AttentionLayer(Session device, string name, int dim, int heads, int kvHeads, int mlpHidden, bool rope, float eps,
        Random random, double residualStd) : base(device, name)
    {
        attentionNorm = Add(new RmsNorm(device, Child("attn_norm"), dim, eps));
        attention = Add(new Attention(device, Child("attn"), dim, heads, kvHeads, rope, random, residualStd));
        mlpNorm = Add(new RmsNorm(device, Child("mlp_norm"), dim, eps));
        mlp = Add(new SwiGluMlp(device, Child("mlp"), dim, mlpHidden, random, residualStd));
    }

    /// <summary>
    /// <paramref name="x"/> [B, Lq, d] are the layer's own tokens at <paramref name="queryPositions"/>;
    /// <paramref name="keySource"/> [B, Lk, d] (null: x itself) supplies keys and values at <paramref name="keyPositions"/>.
    /// </summary>
    public Tensor Forward(Tensor x, int batch, Tensor queryPositions, Tensor? keySource, Tensor keyPositions)
    {
        var normed = attentionNorm.Forward(x);
        var keys = keySource is null ? normed : attentionNorm.Forward(keySource);
        var (h, hNormed) = mlpNorm.ForwardAfterResidual(x, attention.Forward(normed, keys, batch, queryPositions, keyPositions));
        return Ops.Add(h, mlp.Forward(hNormed));
    }

    /// <summary>
    /// Inference (batch 1): like <see cref="Forward"/>, with keys and values appended to and read from
    /// <paramref name="cache"/>. <paramref name="x"/> null: no routed token in this call, the key source's keys are
    /// only recorded (prefix context) and null is returned.
    /// </summary>
    public Tensor? ForwardCached(Tensor? x, Tensor? queryPositions, Tensor? keySource, Tensor? keyPositions, AttentionCache cache)
    {
        var normed = x is null ? null : attentionNorm.Forward(x);
        var keys = keySource is null ? normed : attentionNorm.Forward(keySource);
        var attended = attention.ForwardCached(normed, keys, queryPositions ?? keyPositions!, keyPositions ?? queryPositions!, cache);
        if (x is null) return null;
        var (h, hNormed) = mlpNorm.ForwardAfterResidual(x, attended!);
        return Ops.Add(h, mlp.Forward(hNormed));
    }

    public AttentionCache CreateCache(int capacity = 64) => attention.CreateCache(capacity);
}
