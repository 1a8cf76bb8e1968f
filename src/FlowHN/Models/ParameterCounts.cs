using FlowHN.Nn;

namespace FlowHN.Models;

/// <summary>Parameter counts from a config alone (tests check them against built models).</summary>
public static class ParameterCounts
{
    public static long Attention(ModelConfig c)
    {
        long kv = (long)c.KvHeads * c.HeadDim;
        return 2L * c.Dim * c.Dim + 2 * c.Dim * kv;
    }

    public static long Mamba(MambaShape s)
    {
        long inner = s.Inner;
        return s.Dim * 2 * inner                   // in_proj
               + inner * s.ConvWidth + inner        // conv1d weight and bias
               + inner * (s.DtRank + 2 * s.State)   // x_proj
               + s.DtRank + 2 * s.State             // dt, B, C norms
               + s.DtRank * inner + inner           // dt_proj weight and bias
               + inner * s.State + inner            // A_log, D
               + inner * s.Dim;                     // out_proj
    }

    public static long SwiGlu(ModelConfig c) => 3L * c.Dim * c.MlpHidden;

    /// <summary>One decoder layer: its mixer, the MLP and the two norms.</summary>
    public static long Layer(ModelConfig c, MixerKind kind) =>
        (kind == MixerKind.Attention ? Attention(c) : Mamba(c.Mamba)) + SwiGlu(c) + 2L * c.Dim;

    /// <summary>A sequential stack: embedding, layers, final norm, untied head.</summary>
    public static long Sequential(ModelConfig c) =>
        2L * c.VocabSize * c.Dim + c.Dim + SequentialLM.LayerKinds(c).Sum(kind => Layer(c, kind));
}
