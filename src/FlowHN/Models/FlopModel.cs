namespace FlowHN.Models;

/// <summary>
/// Analytic model FLOPs, one place for MFU (and later the FLOP-aware split). Conventions:
/// a matrix product [m,k] x [k,n] is 2mnk FLOPs forward and twice that backward (gradients of both operands),
/// so training costs 3x the forward. Causal attention over L tokens: each query sees on average (L+1)/2 keys,
/// and scores plus the weighted sum of values cost 2 * 2 * headDim FLOPs per (query, key, head).
/// Element-wise work (norms, activations, softmax) is not counted, as is usual for MFU.
/// </summary>
public static class FlopModel
{
    public const double TrainingMultiplier = 3.0;

    /// <summary>Forward FLOPs per token of a bias-free linear layer.</summary>
    public static double Linear(int inFeatures, int outFeatures) => 2.0 * inFeatures * outFeatures;

    /// <summary>Forward FLOPs per token of causal attention scores and values over a sequence of length L.</summary>
    public static double CausalAttentionCore(int seqLen, int heads, int headDim) =>
        2.0 * 2.0 * headDim * heads * (seqLen + 1) / 2.0;

    public static double SwiGluMlp(int dim, int hidden) => 3 * Linear(dim, hidden);

    public static double AttentionLayer(ModelConfig c, int seqLen)
    {
        int kvDim = c.KvHeads * c.HeadDim;
        return Linear(c.Dim, c.Dim) * 2 + Linear(c.Dim, kvDim) * 2 + CausalAttentionCore(seqLen, c.Heads, c.HeadDim);
    }

    public static double TransformerForwardPerToken(ModelConfig c, int seqLen) =>
        c.Layers * (AttentionLayer(c, seqLen) + SwiGluMlp(c.Dim, c.MlpHidden)) + Linear(c.Dim, c.VocabSize);
}
