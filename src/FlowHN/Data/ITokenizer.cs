namespace FlowHN.Data;

/// <summary>
/// Turns text into token ids and back. <see cref="Encode"/> never produces <see cref="EndOfText"/> for
/// ordinary text; the corpus preparer appends it after every document so the model learns where documents end.
/// </summary>
public interface ITokenizer
{
    /// <summary>Short name stored in shard headers and meta.json ("gpt2", "bytes").</summary>
    string Name { get; }

    /// <summary>Number of distinct token ids; every id lies in [0, VocabSize).</summary>
    int VocabSize { get; }

    /// <summary>The id that separates documents.</summary>
    int EndOfText { get; }

    int[] Encode(string text);

    string Decode(IReadOnlyList<int> tokens);
}
