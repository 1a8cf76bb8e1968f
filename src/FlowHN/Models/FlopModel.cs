namespace FlowHN.Models;

/// <summary>
/// The small analytic cost model the FLOP-aware split needs before a model exists (<see cref="BranchCosts"/>,
/// <see cref="SplitRatio"/>): what one token costs each branch of a FlowHN block. A model's own FLOPs (MFU,
/// <c>flowhn models</c>) are counted from its launches instead (<see cref="ModelMeasure"/>). Conventions, the
/// launch counters' too: a matrix product [m,k] x [k,n] is 2mnk FLOPs forward; element-wise work (norms,
/// activations, softmax) is not counted, as is usual for MFU.
/// </summary>
public static class FlopModel
{
    /// <summary>Forward FLOPs per token of a bias-free linear layer.</summary>
    public static double Linear(int inFeatures, int outFeatures) => 2.0 * inFeatures * outFeatures;

    /// <summary>Forward FLOPs per token of causal attention scores and values over a sequence of length L.</summary>
    public static double CausalAttentionCore(int seqLen, int heads, int headDim) =>
        2.0 * 2.0 * headDim * heads * (seqLen + 1) / 2.0;

    public static double SwiGluMlp(int dim, int hidden) => 3 * Linear(dim, hidden);

    /// <summary>An attention layer without its MLP: Q, K, V and O projections and causal attention over L tokens.</summary>
    public static double AttentionLayer(ModelConfig c, int seqLen)
    {
        int kvDim = c.KvHeads * c.HeadDim;
        return Linear(c.Dim, c.Dim) * 2 + Linear(c.Dim, kvDim) * 2 + CausalAttentionCore(seqLen, c.Heads, c.HeadDim);
    }

    /// <summary>
    /// Forward FLOPs per token of a Mamba-1 mixer: its projections, the depthwise conv (2 W per channel) and the
    /// selective scan, counted as 9 FLOPs per channel and state as in the Mamba paper, plus the skip and gate.
    /// </summary>
    public static double MambaLayer(Nn.MambaShape s) =>
        Linear(s.Dim, 2 * s.Inner) + 2.0 * s.ConvWidth * s.Inner + Linear(s.Inner, s.DtRank + 2 * s.State)
        + Linear(s.DtRank, s.Inner) + 9.0 * s.Inner * s.State + 4.0 * s.Inner + Linear(s.Inner, s.Dim);

    /// <summary>
    /// Forward FLOPs per token of a Mamba-2 mixer: its projections, the depthwise conv over x, B and C and the
    /// chunked SSD scan: per head the C B^T scores (Q N per token and group), their masked product with dt x (Q P)
    /// and the chunk states and inter-chunk output (2 P N), each as whole matrix products with Q = min(chunk, L).
    /// </summary>
    public static double Mamba2Layer(Nn.Mamba2Shape s, int seqLen)
    {
        double q = Math.Min(s.Chunk, seqLen);
        return Linear(s.Dim, s.InProjection) + 2.0 * s.ConvWidth * s.ConvChannels + Linear(s.Inner, s.Dim)
               + 2.0 * s.Heads * (q * s.States / (s.Heads / s.Groups) + q * s.HeadDim + 2.0 * s.HeadDim * s.States);
    }
}
