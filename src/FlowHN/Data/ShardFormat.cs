using System.Buffers.Binary;
using System.Text;

namespace FlowHN.Data;

/// <summary>
/// The token shard layout, little-endian:
/// <code>
/// offset size  field
///  0      8    magic "FHNTOKS1"
///  8      4    format version (int32, currently 1)
/// 12     16    tokenizer name (ASCII, zero padded)
/// 28      4    vocabulary size (int32)
/// 32      8    token count (int64)
/// 40      4    element size (int32: 2 = uint16 when vocab &lt;= 65536, else 4 = int32)
/// 44      ...  the tokens
/// </code>
/// A fixed header keeps the reader trivial and lets tools check a shard without decoding it.
/// </summary>
public static class ShardFormat
{
    public const int Version = 1;
    public const int HeaderSize = 44;
    public const int TokenizerNameBytes = 16;

    public static ReadOnlySpan<byte> Magic => "FHNTOKS1"u8;

    /// <summary>uint16 halves the file for every vocabulary that fits, GPT-2's included.</summary>
    public static int ElementSizeFor(int vocabSize) => vocabSize <= 65536 ? 2 : 4;

    internal static void WriteHeader(Span<byte> header, string tokenizerName, int vocabSize, long tokenCount)
    {
        header.Clear();
        Magic.CopyTo(header);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], Version);
        Encoding.ASCII.GetBytes(tokenizerName, header.Slice(12, TokenizerNameBytes));
        BinaryPrimitives.WriteInt32LittleEndian(header[28..], vocabSize);
        BinaryPrimitives.WriteInt64LittleEndian(header[32..], tokenCount);
        BinaryPrimitives.WriteInt32LittleEndian(header[40..], ElementSizeFor(vocabSize));
    }

    /// <summary>Names must round-trip through the fixed ASCII field, so only short printable ASCII is allowed.</summary>
    internal static void CheckTokenizerName(string name)
    {
        if (name.Length == 0 || name.Length > TokenizerNameBytes || name.Any(c => c is < '!' or > '~'))
        {
            throw new ArgumentException($"Tokenizer name '{name}' must be 1 to {TokenizerNameBytes} printable ASCII characters.", nameof(name));
        }
    }
}
