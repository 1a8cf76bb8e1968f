using FlowHN.Runtime;

namespace FlowHN.Data;

/// <summary>
/// A batch of <see cref="BatchSize"/> rows of <see cref="SeqLen"/> tokens, row-major; the target of input
/// [b, t] is the token that follows it in the text, so Targets[b, t] == Inputs[b, t + 1] within a row.
/// </summary>
public sealed record TokenBatch(int[] Inputs, int[] Targets, int BatchSize, int SeqLen);

/// <summary>
/// Draws training batches as random windows of seq_len + 1 tokens (any start, windows may cross document
/// boundaries, where the end-of-text token tells the model a new document begins). Deterministic for a
/// seed, and resumable: saving <see cref="State"/> and restoring it continues with exactly the batch an
/// uninterrupted run would have drawn next.
/// </summary>
public sealed class TokenLoader
{
    private readonly int[] tokens;
    private SplitMix64 random;

    public TokenLoader(int[] tokens, ulong seed)
    {
        this.tokens = tokens;
        random = new SplitMix64(seed);
    }

    /// <summary>The generator state; equals the seed before the first batch.</summary>
    public ulong State
    {
        get => random.State;
        set => random.State = value;
    }

    public TokenBatch NextBatch(int batch, int seqLen)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        var inputs = new int[checked(batch * seqLen)];
        var targets = new int[inputs.Length];
        Fill(inputs, targets, seqLen);
        return new TokenBatch(inputs, targets, batch, seqLen);
    }

    /// <summary>
    /// Rank <paramref name="rank"/>'s slice of a global batch of <paramref name="ranks"/> x <paramref name="batch"/>
    /// rows: every rank draws the whole global batch (so all loaders stay at the same position) and keeps rows
    /// [rank x batch, (rank + 1) x batch). The slices are disjoint and together are what one process drawing
    /// ranks x batch rows gets.
    /// </summary>
    public TokenBatch NextBatch(int batch, int seqLen, int rank, int ranks)
    {
        if (ranks == 1) return NextBatch(batch, seqLen);
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, ranks);
        var global = NextBatch(checked(batch * ranks), seqLen);
        int size = batch * seqLen;
        return new TokenBatch(global.Inputs.AsSpan(rank * size, size).ToArray(), global.Targets.AsSpan(rank * size, size).ToArray(), batch, seqLen);
    }

    /// <summary>Fills caller-owned buffers (inputs.Length / seqLen rows), for loops that reuse host memory.</summary>
    public void Fill(Span<int> inputs, Span<int> targets, int seqLen)
    {
        CheckShape(inputs.Length, targets.Length, seqLen);
        if (tokens.Length < seqLen + 1)
        {
            throw new UserException($"The training data has {tokens.Length} tokens, fewer than seq_len + 1 = {seqLen + 1} needed for one window. " +
                "Use a shorter --seq or more training text.");
        }

        var starts = tokens.Length - seqLen; // window [s, s + seqLen] must fit: s in [0, n - seqLen - 1]
        for (var row = 0; row < inputs.Length / seqLen; row++)
        {
            var start = (int)random.NextBelow(starts);
            tokens.AsSpan(start, seqLen).CopyTo(inputs.Slice(row * seqLen, seqLen));
            tokens.AsSpan(start + 1, seqLen).CopyTo(targets.Slice(row * seqLen, seqLen));
        }
    }

    /// <summary>
    /// Evaluation batches: consecutive non-overlapping windows from the start of <paramref name="tokens"/>,
    /// the same on every call so validation losses of different steps and runs are comparable. Only full
    /// batches are returned, at most <paramref name="maxBatches"/>.
    /// </summary>
    public static IEnumerable<TokenBatch> EvalBatches(int[] tokens, int batch, int seqLen, int maxBatches)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(seqLen, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatches, 1);
        var windows = (tokens.Length - 1) / seqLen; // window w covers tokens [w*seqLen, (w+1)*seqLen]
        var count = Math.Min(maxBatches, windows / batch);
        if (count == 0)
        {
            throw new UserException($"The validation data has {tokens.Length} tokens, fewer than batch x seq_len + 1 = {(long)batch * seqLen + 1} needed for one evaluation batch. " +
                "Use a smaller --batch or --seq, or hold out more validation text.");
        }

        return Enumerate(tokens, batch, seqLen, count);
    }

    private static IEnumerable<TokenBatch> Enumerate(int[] tokens, int batch, int seqLen, int count)
    {
        for (var b = 0; b < count; b++)
        {
            var inputs = new int[batch * seqLen];
            var targets = new int[inputs.Length];
            for (var row = 0; row < batch; row++)
            {
                var start = (b * batch + row) * seqLen;
                tokens.AsSpan(start, seqLen).CopyTo(inputs.AsSpan(row * seqLen));
                tokens.AsSpan(start + 1, seqLen).CopyTo(targets.AsSpan(row * seqLen));
            }

            yield return new TokenBatch(inputs, targets, batch, seqLen);
        }
    }

    private static void CheckShape(int inputs, int targets, int seqLen)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(seqLen, 1);
        if (inputs != targets || inputs == 0 || inputs % seqLen != 0)
        {
            throw new ArgumentException($"Inputs ({inputs}) and targets ({targets}) must have the same non-zero length, a multiple of seq_len ({seqLen}).");
        }
    }
}
