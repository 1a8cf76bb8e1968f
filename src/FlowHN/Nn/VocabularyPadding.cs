namespace FlowHN.Nn;

/// <summary>
/// The embedding and the LM head hold the vocabulary rounded up to a multiple of <see cref="Multiple"/> rows
/// (GPT-2's 50,257 becomes 50,304, as in llm.c and nanoGPT): the logits' rows are then 256-byte aligned, which the
/// fast matrix-product kernels need, instead of an odd leading dimension. The padding rows start at zero and stay
/// there: no token id reaches them, the loss and sampling see only the first V logits (the LM head returns a view
/// of them), so they never get a gradient, and weight decay of zero is zero. Checkpoints hold exactly V rows
/// (PyTorch-compatible), and parameter counts and FLOPs count V; memory counts what is allocated.
/// </summary>
public static class VocabularyPadding
{
    /// <summary>Rows are allocated in multiples of this (64 floats: 256 bytes).</summary>
    public const int Multiple = 64;

    /// <summary>The vocabulary rounded up to a multiple of <see cref="Multiple"/> (a multiple already is unchanged).</summary>
    public static int Rows(int vocab)
    {
        if (vocab <= 0) throw new ArgumentOutOfRangeException(nameof(vocab), $"A vocabulary has at least one token, got {vocab}.");
        return checked((vocab + Multiple - 1) / Multiple * Multiple);
    }

    /// <summary>Elements the padding adds to the embedding and the LM head together.</summary>
    public static long Elements(int vocab, int dim) => 2L * (Rows(vocab) - vocab) * dim;
}
