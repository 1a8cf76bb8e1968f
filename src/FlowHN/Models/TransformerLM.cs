using FlowHN.Nn;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Models;

/// <summary>
/// The Transformer baseline (Llama-style): token embedding, N pre-norm decoder layers of grouped-query
/// attention with RoPE and a SwiGLU MLP, a final RMSNorm and an untied LM head. Init N(0, 0.02); the two
/// projections that write into the residual stream use 0.02 / sqrt(2 N), as in GPT-2.
/// </summary>
public sealed class TransformerLM : LanguageModel
{
    private readonly Embedding embed;
    private readonly List<DecoderLayer> layers = new();
    private readonly RmsNorm finalNorm;
    private readonly Linear head;
    private readonly Dictionary<int, Tensor> positions = new();

    public TransformerLM(ComputeDevice device, ModelConfig config, int seed) : base(device, config)
    {
        var random = new Random(seed);
        double residualStd = 0.02 / Math.Sqrt(2.0 * config.Layers);
        embed = Add(new Embedding(device, "embed", config.VocabSize, config.Dim, random));
        for (int i = 0; i < config.Layers; i++)
            layers.Add(Add(new DecoderLayer(device, $"layers.{i}", config.Dim, config.MlpHidden, config.NormEps, random, residualStd,
                name => new Attention(device, name, config.Dim, config.Heads, config.KvHeads, config.Rope, random, residualStd), "attn")));
        finalNorm = Add(new RmsNorm(device, "final_norm", config.Dim, config.NormEps));
        head = Add(new Linear(device, "lm_head", config.Dim, config.VocabSize, random));
    }

    public override Tensor Forward(TokenIndex ids, int batch, int seqLen)
    {
        var context = new SequenceContext(batch, seqLen, PositionsFor(seqLen));
        var x = embed.Forward(ids);
        foreach (var layer in layers) x = layer.Forward(x, context);
        return head.Forward(finalNorm.Forward(x));
    }

    public override double TrainingFlopsPerToken(int seqLen) =>
        FlopModel.TrainingMultiplier * FlopModel.TransformerForwardPerToken(Config, seqLen);

    /// <summary>Parameters of a Transformer of this shape, without building it.</summary>
    public static long CountParameters(ModelConfig c)
    {
        long kv = (long)c.KvHeads * c.HeadDim;
        long perLayer = 2L * c.Dim * c.Dim + 2 * c.Dim * kv + 3L * c.Dim * c.MlpHidden + 2L * c.Dim;
        return 2L * c.VocabSize * c.Dim + c.Layers * perLayer + c.Dim;
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
