using FlowHN.Runtime;

namespace FlowHN.Models;

/// <summary>How a parallel block distributes the sequence's tokens between its attention and SSM branches.</summary>
public enum SplitStrategy
{
    /// <summary>Both branches see every token (the paper's No_Split).</summary>
    None,
    /// <summary>First half / second half, swapped every block (AE_Split, CLI word <c>ae</c>).</summary>
    AlternatingEqual,
    /// <summary>A FLOP-sized attention segment, the same in every block (FA_Split, <c>fa</c>).</summary>
    FlopAware,
    /// <summary>A FLOP-sized attention window moving backwards block by block (FAC_Split, <c>fac</c>).</summary>
    FlopAwareCirculating,
}

/// <summary>What a branch may see besides its own tokens.</summary>
public enum SplitContext
{
    /// <summary>Only its own tokens, as in the paper's reference code.</summary>
    Local,
    /// <summary>Attention queries also see the keys of every earlier token of the sequence.</summary>
    Prefix,
}

/// <summary>The CLI words for the split enums (none|ae|fa|fac, local|prefix).</summary>
public static class SplitWords
{
    private static readonly (string Word, SplitStrategy Value)[] Strategies =
    [
        ("none", SplitStrategy.None), ("ae", SplitStrategy.AlternatingEqual), ("fa", SplitStrategy.FlopAware),
        ("fac", SplitStrategy.FlopAwareCirculating),
    ];

    private static readonly (string Word, SplitContext Value)[] Contexts =
        [("local", SplitContext.Local), ("prefix", SplitContext.Prefix)];

    public static IReadOnlyList<string> StrategyWords => Strategies.Select(s => s.Word).ToList();
    public static IReadOnlyList<string> ContextWords => Contexts.Select(c => c.Word).ToList();

    public static SplitStrategy ParseStrategy(string word) => Parse(Strategies, word, "split strategy");
    public static SplitContext ParseContext(string word) => Parse(Contexts, word, "split context");

    public static string Word(SplitStrategy strategy) => Strategies.First(s => s.Value == strategy).Word;
    public static string Word(SplitContext context) => Contexts.First(c => c.Value == context).Word;

    /// <summary>How a model's split is named in tables: "-" (no token split), "none", or e.g. "fac/prefix".</summary>
    public static string Label(ModelConfig c) => !c.Architecture.SplitsTokens ? "-"
        : c.Split == SplitStrategy.None ? "none" : $"{Word(c.Split)}/{Word(c.SplitContext)}";

    private static T Parse<T>((string Word, T Value)[] table, string word, string what)
    {
        foreach (var (w, value) in table)
            if (string.Equals(w, word.Trim(), StringComparison.OrdinalIgnoreCase)) return value;
        throw new UserException($"Unknown {what} '{word}'; use one of: {string.Join(", ", table.Select(t => t.Word))}.");
    }
}

/// <summary>
/// The token positions each branch of one block processes, strictly increasing in 0..SeqLen-1. Split strategies
/// route every position to exactly one branch; <see cref="SplitStrategy.None"/> gives both branches all of them.
/// </summary>
public sealed record BlockRouting(int SeqLen, int[] AttentionPositions, int[] SsmPositions)
{
    public bool IsSplit => AttentionPositions.Length < SeqLen;
}

/// <summary>
/// Builds the routing of each block. Plans are deterministic and depend only on the strategy, the block index,
/// the sequence length and the attention token count (the context changes what a branch sees, not which tokens
/// it owns). Every plan is checked before it is returned, so a wrong one fails loudly instead of silently
/// dropping or duplicating tokens.
/// </summary>
public static class SplitPlanner
{
    /// <param name="attentionTokens">Tokens routed to attention (fa, fac); ignored by none and ae.</param>
    public static BlockRouting Plan(SplitStrategy strategy, SplitContext context, int blockIndex, int blockCount, int seqLen,
        int attentionTokens)
    {
        if (blockCount < 1 || blockIndex < 0 || blockIndex >= blockCount)
            throw new ArgumentOutOfRangeException(nameof(blockIndex), $"Block {blockIndex} is not one of {blockCount} blocks.");
        if (seqLen < 1) throw new ArgumentOutOfRangeException(nameof(seqLen), $"Sequence length {seqLen} must be positive.");
        if (strategy != SplitStrategy.None && seqLen < 2)
            throw new ArgumentOutOfRangeException(nameof(seqLen), $"Splitting needs at least 2 tokens, got {seqLen}.");
        if (strategy is SplitStrategy.FlopAware or SplitStrategy.FlopAwareCirculating
            && (attentionTokens <= 0 || attentionTokens >= seqLen))
            throw new ArgumentOutOfRangeException(nameof(attentionTokens),
                $"Attention tokens must lie in 1..{seqLen - 1} for a sequence of {seqLen}, got {attentionTokens}.");

        int[] attention = strategy switch
        {
            SplitStrategy.None => Range(0, seqLen),
            SplitStrategy.AlternatingEqual => blockIndex % 2 == 0 ? Range(0, seqLen / 2) : Range(seqLen / 2, seqLen),
            SplitStrategy.FlopAware => context == SplitContext.Local
                ? Range(0, attentionTokens)
                : Range(seqLen - attentionTokens, seqLen),
            SplitStrategy.FlopAwareCirculating => CirculatingWindow(blockIndex, seqLen, attentionTokens),
            _ => throw new ArgumentOutOfRangeException(nameof(strategy), strategy, null),
        };
        int[] ssm = strategy == SplitStrategy.None ? Range(0, seqLen) : Complement(attention, seqLen);
        var routing = new BlockRouting(seqLen, attention, ssm);
        Verify(routing, strategy != SplitStrategy.None);
        return routing;
    }

    /// <summary>The routing of every block of a model.</summary>
    public static BlockRouting[] PlanAll(SplitStrategy strategy, SplitContext context, int blockCount, int seqLen,
        int attentionTokens) =>
        Enumerable.Range(0, blockCount).Select(i => Plan(strategy, context, i, blockCount, seqLen, attentionTokens)).ToArray();

    /// <summary>
    /// The fac window of block i: the positions (start + j) mod L for j in 0..a-1, sorted, with
    /// start = (L - a(i+1)) mod L (the non-negative remainder). The windows walk backwards around the sequence
    /// taken as a ring: block 0 takes the last a tokens and each block the a tokens just before the previous
    /// block's window, wrapping past position 0 to the end of the sequence. Consecutive windows never overlap
    /// or leave a gap, so every token gets its turn in attention as evenly as the block count allows.
    /// </summary>
    public static int[] CirculatingWindow(int blockIndex, int seqLen, int attentionTokens)
    {
        long start = ((seqLen - (long)attentionTokens * (blockIndex + 1)) % seqLen + seqLen) % seqLen;
        var window = new int[attentionTokens];
        for (int j = 0; j < attentionTokens; j++) window[j] = (int)((start + j) % seqLen);
        Array.Sort(window);
        return window;
    }

    private static int[] Range(int from, int to) => Enumerable.Range(from, to - from).ToArray();

    private static int[] Complement(int[] taken, int seqLen)
    {
        var isTaken = new bool[seqLen];
        foreach (int p in taken) isTaken[p] = true;
        return Enumerable.Range(0, seqLen).Where(p => !isTaken[p]).ToArray();
    }

    /// <summary>Both lists strictly increasing and in range; with a split, every position in exactly one list.</summary>
    private static void Verify(BlockRouting r, bool split)
    {
        var seen = new int[r.SeqLen];
        foreach (var positions in new[] { r.AttentionPositions, r.SsmPositions })
        {
            for (int i = 0; i < positions.Length; i++)
            {
                if (positions[i] < 0 || positions[i] >= r.SeqLen || (i > 0 && positions[i] <= positions[i - 1]))
                    throw new InvalidOperationException($"Routing positions are not strictly increasing in 0..{r.SeqLen - 1}.");
                seen[positions[i]]++;
            }
        }
        int expected = split ? 1 : 2;
        int bad = Array.FindIndex(seen, n => n != expected);
        if (bad >= 0)
            throw new InvalidOperationException($"Token {bad} is routed to {seen[bad]} branches, expected {expected}.");
    }
}
