using FlowHN.Autograd;
using FlowHN.Inference;
using FlowHN.Nn;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Models;

/// <summary>
/// A causal language model: token ids [batch, seq] in, next-token logits [batch, seq, vocab] out. When the
/// vocabulary is not a multiple of 64 the logits are a view whose rows are <see cref="VocabularyPadding.Rows"/>
/// floats apart (see <see cref="LmHead"/>): read them with ToArray or RowsView, or copy them before a kernel
/// that needs contiguous input.
/// </summary>
public abstract class LanguageModel : Module
{
    protected LanguageModel(Session device, ModelConfig config) : base(device, "")
    {
        config.Validate();
        Config = config;
    }

    public ModelConfig Config { get; }

    public abstract Tensor Forward(TokenIndex ids, int batch, int seqLen);

    /// <summary>
    /// The sequence length the model was trained at. FlowHN routes tokens by absolute position with the plan of
    /// this length (see <see cref="FlowHNLM"/>), so that forwards of any length, and decoding, agree; training
    /// leaves it unset and uses the plan of each batch's own length (the same plan at the trained length).
    /// </summary>
    public virtual int? TrainedLength { get; set; }

    /// <summary>An empty decoding state for one sequence (see <see cref="InferenceState"/>).</summary>
    public abstract InferenceState CreateInferenceState();

    /// <summary>
    /// Inference on one sequence: the next-token logits [1, n, vocab] of <paramref name="ids"/> (n tokens at the
    /// state's next positions), continuing from and updating <paramref name="state"/>. The prompt at once is the
    /// prefill; one token at a time is decoding. No gradients are recorded (call it under a NoGradScope).
    /// </summary>
    public abstract Tensor ForwardCached(TokenIndex ids, int seqLen, InferenceState state);

    /// <summary>
    /// Activation checkpointing: each layer (FlowHN: each block) keeps only its output during the forward and
    /// runs again in the backward. Saves most of the activation memory for about a third more compute; results
    /// are identical.
    /// </summary>
    public bool Recompute { get; set; }

    /// <summary>
    /// When set, training forwards mark their layers, blocks and branches for it, and the backward mirrors the marks
    /// (profiling: see <c>FlowHN.Diagnostics.SegmentProfile</c>). A recomputed layer is not marked again.
    /// </summary>
    public ISegmentObserver? Observer { get; set; }

    /// <summary>The observer for a layer's forward: none when the layer runs again to recompute its activations.</summary>
    protected ISegmentObserver? ObserverFor(bool recomputing) => recomputing ? null : Observer;

    /// <summary>How a training step keeps this model's activations (for the memory measurement).</summary>
    public ActivationMemory ActivationMemory =>
        !Device.Tape.ReleaseSegments ? ActivationMemory.Kept : Recompute ? ActivationMemory.Recomputed : ActivationMemory.Released;

    /// <summary>Model FLOPs of forward + backward per trained token at this sequence length (see ModelMeasure).</summary>
    public double TrainingFlopsPerToken(int seqLen) => TrainingFlopsPerToken(Config, seqLen);

    /// <summary>Parameters of an architecture and shape, from the module tree of the model built on a shape-only device.</summary>
    public static long CountParameters(ModelConfig config) => ModelMeasure.Parameters(config);

    /// <summary>Training FLOPs per token of an architecture and shape, counted in a shape-only forward and backward.</summary>
    public static double TrainingFlopsPerToken(ModelConfig config, int seqLen) => ModelMeasure.Flops(config, seqLen).Training;

    /// <summary>Builds the architecture and allocates its parameters in one flat buffer.</summary>
    public static LanguageModel Create(Session device, ModelConfig config, int seed)
    {
        var model = config.Architecture.Build(device, config, seed);
        model.AllocateParameters();
        return model;
    }
}
