using System.Text;

namespace FlowHN.Data;

/// <summary>
/// One token per UTF-8 byte: no vocabulary file, no unknown tokens, and a 256-row embedding, which makes it
/// the tokenizer of choice for tiny models and tests. The end-of-text id is 0, the NUL byte, because NUL
/// never occurs in real text (the corpus cleaner strips control characters and the preparer rejects a
/// document that contains one).
/// </summary>
public sealed class ByteTokenizer : ITokenizer
{
    public const string TokenizerName = "bytes";

    public string Name => TokenizerName;

    public int VocabSize => 256;

    public int EndOfText => 0;

    public int[] Encode(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var tokens = new int[bytes.Length];
        for (var i = 0; i < bytes.Length; i++)
        {
            tokens[i] = bytes[i];
        }

        return tokens;
    }

    /// <summary>Invalid UTF-8 (a window cut inside a multi-byte character) decodes to U+FFFD.</summary>
    public string Decode(IReadOnlyList<int> tokens)
    {
        var bytes = new byte[tokens.Count];
        for (var i = 0; i < bytes.Length; i++)
        {
            var t = tokens[i];
            if ((uint)t > 255)
            {
                throw new ArgumentOutOfRangeException(nameof(tokens), $"Token {t} at index {i} is not a byte (0..255).");
            }

            bytes[i] = (byte)t;
        }

        return Encoding.UTF8.GetString(bytes);
    }
}
