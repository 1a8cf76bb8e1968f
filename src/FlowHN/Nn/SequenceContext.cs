using FlowHN.Tensors;

namespace FlowHN.Nn;

/// <summary>What a sequence mixer needs besides its input: the batch geometry and the token positions.</summary>
public sealed record SequenceContext(int Batch, int SeqLen, Tensor Positions);

/// <summary>The token-mixing half of a decoder layer (attention, Mamba, ...): [B, L, d] -> [B, L, d].</summary>
public interface ISequenceMixer
{
    Tensor Forward(Tensor x, SequenceContext context);
}
