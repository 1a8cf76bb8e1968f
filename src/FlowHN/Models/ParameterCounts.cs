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

    /// <summary>A Mamba mixer; <paramref name="outputProjection"/> false leaves out out_proj (Hymba).</summary>
    public static long Mamba(MambaShape s, bool outputProjection = true)
    {
        long inner = s.Inner;
        return s.Dim * 2 * inner                   // in_proj
               + inner * s.ConvWidth + inner        // conv1d weight and bias
               + inner * (s.DtRank + 2 * s.State)   // x_proj
               + s.DtRank + 2 * s.State             // dt, B, C norms
               + s.DtRank * inner + inner           // dt_proj weight and bias
               + inner * s.State + inner            // A_log, D
               + (outputProjection ? inner * s.Dim : 0); // out_proj
    }

    /// <summary>A Mamba-2 mixer: in_proj, the conv over x, B and C, dt_bias, A_log and D per head, the gated norm, out_proj.</summary>
    public static long Mamba2(Mamba2Shape s, bool outputProjection = true) =>
        (long)s.Dim * s.InProjection + (long)s.ConvChannels * (s.ConvWidth + 1) + 3L * s.Heads + s.Inner +
        (outputProjection ? (long)s.Inner * s.Dim : 0);

    /// <summary>Hymba's mixer: q, k, v (no o_proj), the SSM without out_proj, two output norms, one out_proj.</summary>
    public static long Hymba(ModelConfig c) =>
        Attention(c) - (long)c.Dim * c.Dim + 2L * c.Dim + (long)c.Dim * c.Dim +
        (c.Ssm == SsmKind.Mamba2
            ? Mamba2(SequentialLM.Hymba2Shape(c), outputProjection: false)
            : Mamba(SequentialLM.HymbaShape(c), outputProjection: false));

    public static long SwiGlu(ModelConfig c) => 3L * c.Dim * c.MlpHidden;

    /// <summary>One decoder layer: its mixer, the MLP and the two norms.</summary>
    public static long Layer(ModelConfig c, MixerKind kind) =>
        kind switch
        {
            MixerKind.Attention => Attention(c),
            MixerKind.Mamba => Mamba(c.Mamba),
            MixerKind.Mamba2 => Mamba2(c.Mamba2),
            MixerKind.Hymba => Hymba(c),
            _ => throw SequentialLM.NotADecoderLayer(kind),
        } + SwiGlu(c) + 2L * c.Dim;

    /// <summary>A sequential stack: embedding, layers, final norm, untied head.</summary>
    public static long Sequential(ModelConfig c, IEnumerable<MixerKind> kinds) =>
        2L * c.VocabSize * c.Dim + c.Dim + kinds.Sum(kind => Layer(c, kind));
}
