using FlowHN.Nn;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Models;

/// <summary>A causal language model: token ids [batch, seq] in, next-token logits [batch, seq, vocab] out.</summary>
public abstract class LanguageModel : Module
{
    protected LanguageModel(ComputeDevice device, ModelConfig config) : base(device, "")
    {
        config.Validate();
        Config = config;
    }

    public ModelConfig Config { get; }

    public abstract Tensor Forward(TokenIndex ids, int batch, int seqLen);

    /// <summary>Model FLOPs of forward + backward per trained token at this sequence length (see FlopModel).</summary>
    public abstract double TrainingFlopsPerToken(int seqLen);

    public static LanguageModel Create(ComputeDevice device, ModelConfig config, int seed) => config.Arch switch
    {
        "transformer" => new TransformerLM(device, config, seed),
        _ => throw new UserException($"Unknown architecture '{config.Arch}'."),
    };
}
