using System.IO.Hashing;
using System.Text;

namespace FlowHN.Data;

/// <summary>
/// A document's text as UTF-8, with a count of the byte sequences that were not valid UTF-8 (each replaced by
/// U+FFFD) and an XXH3-64 hash of its bytes, which tells a cache whether the file changed even when its size
/// and time did not.
/// </summary>
public sealed record TextFile(string Text, int InvalidSequences, string Hash)
{
    public static TextFile Read(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        return new TextFile(Decode(bytes, out int invalid), invalid, HashOf(bytes));
    }

    public static string HashOf(ReadOnlySpan<byte> bytes) => XxHash3.HashToUInt64(bytes).ToString("x16");

    public static string HashOfFile(string path)
    {
        var hash = new XxHash3();
        using var stream = File.OpenRead(path);
        hash.Append(stream);
        return hash.GetCurrentHashAsUInt64().ToString("x16");
    }

    /// <summary>Decodes UTF-8 (a leading byte-order mark dropped), counting invalid sequences.</summary>
    public static string Decode(ReadOnlySpan<byte> bytes, out int invalidSequences)
    {
        if (bytes.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) bytes = bytes[3..];
        var fallback = new CountingFallback();
        var encoding = (Encoding)new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).Clone();
        encoding.DecoderFallback = fallback;
        // One decoding pass (GetString would count twice: once to size, once to fill); UTF-8 never gives more
        // UTF-16 units than it has bytes.
        var chars = new char[bytes.Length];
        int length = encoding.GetChars(bytes, chars);
        invalidSequences = fallback.Count;
        return new string(chars, 0, length);
    }

    /// <summary>Replaces each invalid sequence by U+FFFD, as the default decoder does, and counts them.</summary>
    private sealed class CountingFallback : DecoderFallback
    {
        public int Count;
        public override int MaxCharCount => 1;
        public override DecoderFallbackBuffer CreateFallbackBuffer() => new Buffer(this);

        private sealed class Buffer(CountingFallback owner) : DecoderFallbackBuffer
        {
            private int remaining;

            public override int Remaining => remaining;

            public override bool Fallback(byte[] bytesUnknown, int index)
            {
                owner.Count++;
                remaining = 1;
                return true;
            }

            public override char GetNextChar() => remaining-- > 0 ? '\uFFFD' : '\0';

            public override bool MovePrevious()
            {
                if (remaining >= 1) return false;
                remaining++;
                return true;
            }

            public override void Reset() => remaining = 0;
        }
    }
}
