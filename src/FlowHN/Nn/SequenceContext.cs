using FlowHN.Inference;
using FlowHN.Tensors;

namespace FlowHN.Nn;

/// <summary>
/// What a sequence mixer needs besides its input: the batch geometry and the token positions (absolute, with
/// their host copy when they came from the host). With a <paramref name="Cache"/> (inference, batch 1) the mixer
/// continues from the state it holds and leaves its new state there. An <paramref name="Observer"/> sees the
/// segments a mixer marks (Hymba's attention and SSM heads).
/// </summary>
public sealed record SequenceContext(int Batch, int SeqLen, Tensor Positions, ILayerCache? Cache = null, ISegmentObserver? Observer = null);

/// <summary>The token-mixing half of a decoder layer (attention, Mamba, ...): [B, L, d] -> [B, L, d].</summary>
public interface ISequenceMixer
{
    Tensor Forward(Tensor x, SequenceContext context);
}
