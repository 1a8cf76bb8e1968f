namespace FlowHN.Models;

/// <summary>How a step keeps its layers' activations (see <see cref="Autograd.MemorySegment"/>).</summary>
public enum ActivationMemory
{
    /// <summary>Everything until the step ends (<see cref="Autograd.Tape.ReleaseSegments"/> off).</summary>
    Kept,
    /// <summary>Each layer's until its backward is done (the default).</summary>
    Released,
    /// <summary>Only each layer's output; the backward runs the layer again (<see cref="LanguageModel.Recompute"/>).</summary>
    Recomputed,
}

/// <summary>
/// What a training step holds on the device, in bytes as tensors request them (before the allocator rounds
/// blocks up to its buckets): the state that stays between steps, and the activations' peak per token.
/// </summary>
public sealed record MemoryEstimate(long StateBytes, double ActivationBytesPerToken)
{
    /// <summary>State plus the activations of a step of <paramref name="tokens"/> tokens.</summary>
    public double StepBytes(long tokens) => StateBytes + ActivationBytesPerToken * tokens;
}
