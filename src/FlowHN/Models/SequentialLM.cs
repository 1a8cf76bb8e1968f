using FlowHN.Autograd;
using FlowHN.Inference;
using FlowHN.Nn;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Models;

/// <summary>What mixes the tokens of one layer.</summary>
public enum MixerKind
{
    /// <summary>Attention (a Transformer layer).</summary>
    Attention,
    /// <summary>A Mamba-1 mixer.</summary>
    Mamba,
    /// <summary>Hymba's attention and SSM heads on the same tokens.</summary>
    Hymba,
    /// <summary>A Mamba-2 (SSD) mixer.</summary>
    Mamba2,
    /// <summary>FlowHN's parallel block: an attention and a Mamba decoder layer side by side, then the fusion.</summary>
    Parallel,
}

/// <summary>
/// A stack of pre-norm decoder layers, each `x + mixer(norm(x))` then `+ mlp(norm(.))`, between a token
/// embedding and a final RMSNorm + untied LM head. The architecture decides each layer's mixer
/// (<see cref="Architecture.LayerKinds"/>): transformer (all attention, with RoPE), mamba (all Mamba), shm
/// (alternating), jamba (one attention layer in 8), hymba (attention and SSM heads in every layer).
/// Init N(0, 0.02); the projections that write into the residual stream use 0.02 / sqrt(2 N), as in GPT-2.
/// </summary>
public sealed class SequentialLM : LanguageModel
{
    private readonly Embedding embed;
    private readonly List<DecoderLayer> layers = new();
    private readonly RmsNorm finalNorm;
    private readonly LmHead head;
    private readonly Dictionary<int, Tensor> positions = new();
    private readonly MixerKind[] kinds;

    public SequentialLM(Session device, ModelConfig config, int seed) : base(device, config)
    {
        var random = new Random(seed);
        double residualStd = 0.02 / Math.Sqrt(2.0 * config.Layers);
        embed = Add(new Embedding(device, "embed", config.VocabSize, config.Dim, random));
        kinds = config.Architecture.LayerKinds(config).ToArray();
        for (int i = 0; i < config.Layers; i++)
        {
            var kind = kinds[i];
            layers.Add(Add(new DecoderLayer(device, $"layers.{i}", config.Dim, config.MlpHidden, config.NormEps, random, residualStd,
                name => CreateMixer(device, kind, name, config, random, residualStd), MixerName(kind))));
        }
        finalNorm = Add(new RmsNorm(device, "final_norm", config.Dim, config.NormEps));
        head = Add(new LmHead(device, "lm_head", config.Dim, config.VocabSize, random));
    }

    private Module CreateMixer(Session device, MixerKind kind, string name, ModelConfig c, Random random, double residualStd)
    {
        switch (kind)
        {
            case MixerKind.Attention: return new Attention(device, name, c.Dim, c.Heads, c.KvHeads, c.Rope, random, residualStd);
            case MixerKind.Mamba: return new MambaMixer(device, name, c.Mamba, c.NormEps, random, residualStd);
            case MixerKind.Mamba2: return new Mamba2Mixer(device, name, c.Mamba2, c.NormEps, random, residualStd);
            case MixerKind.Hymba:
                return c.Ssm == SsmKind.Mamba2
                    ? new HymbaMixer(device, name, c.Dim, c.Heads, c.KvHeads, Hymba2Shape(c), c.NormEps, random, residualStd)
                    : new HymbaMixer(device, name, c.Dim, c.Heads, c.KvHeads, HymbaShape(c), c.NormEps, random, residualStd);
            default: throw NotADecoderLayer(kind);
        }
    }

    private static string MixerName(MixerKind kind) => kind switch
    {
        MixerKind.Attention => "attn",
        MixerKind.Mamba => "mamba",
        MixerKind.Hymba => "hymba",
        MixerKind.Mamba2 => "mamba2",
        _ => throw NotADecoderLayer(kind),
    };

    internal static ArgumentOutOfRangeException NotADecoderLayer(MixerKind kind) =>
        new(nameof(kind), kind, "A sequential stack's layers have one mixer each (attention, Mamba, Mamba-2 or Hymba).");

    /// <summary>Hymba's SSM heads: d_inner = d so they average with the attention heads.</summary>
    public static MambaShape HymbaShape(ModelConfig c) => MambaShape.For(c.Dim, expand: 1, c.MambaState, c.MambaConvWidth);

    /// <summary>Hymba's Mamba-2 SSM heads (<c>--ssm mamba2</c>): d_inner = d as well.</summary>
    public static Mamba2Shape Hymba2Shape(ModelConfig c) => Mamba2Shape.For(c.Dim, expand: 1, c.MambaConvWidth);

    private static SegmentKind LayerSegment(MixerKind kind) => kind switch
    {
        MixerKind.Attention => SegmentKind.AttentionLayer,
        MixerKind.Mamba or MixerKind.Mamba2 => SegmentKind.MambaLayer,
        MixerKind.Hymba => SegmentKind.HymbaLayer,
        _ => throw NotADecoderLayer(kind),
    };

    public override Tensor Forward(TokenIndex ids, int batch, int seqLen)
    {
        var context = new SequenceContext(batch, seqLen, PositionsFor(seqLen));
        var x = embed.Forward(ids);
        for (int i = 0; i < layers.Count; i++)
        {
            var (layer, segment) = (layers[i], LayerSegment(kinds[i]));
            x = MemorySegment.Run(Device, x, (input, again) =>
            {
                var observer = ObserverFor(again);
                return Segments.Run(Device, observer, segment, () => layer.Forward(input, context with { Observer = observer }));
            }, Recompute);
        }
        return head.Forward(finalNorm.Forward(x));
    }

    public override InferenceState CreateInferenceState() => new(layers.Select(l => l.CreateCache()).ToList());

    public override Tensor ForwardCached(TokenIndex ids, int seqLen, InferenceState state)
    {
        var positions = Tensor.FromArray(Device, Enumerable.Range(state.Position, seqLen).ToArray(), seqLen);
        var x = embed.Forward(ids);
        for (int i = 0; i < layers.Count; i++)
            x = layers[i].Forward(x, new SequenceContext(1, seqLen, positions, state.Layers[i]));
        state.Advance(seqLen);
        return head.Forward(finalNorm.Forward(x));
    }

    public override void Dispose()
    {
        foreach (var p in positions.Values) p.Dispose();
        positions.Clear();
        base.Dispose();
    }

    /// <summary>0..L-1 on the device, uploaded once per sequence length and kept outside step scopes.</summary>
    private Tensor PositionsFor(int seqLen)
    {
        if (!positions.TryGetValue(seqLen, out var p))
        {
            p = Tensor.FromArray(Device, Enumerable.Range(0, seqLen).ToArray(), [seqLen], persistent: true);
            positions[seqLen] = p;
        }
        return p;
    }
}
