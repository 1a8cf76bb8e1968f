using System.Buffers.Binary;
using System.Text;
using FlowHN.Runtime;

namespace FlowHN.Data;

/// <summary>
/// A token shard read fully into memory and validated (shards here are tens of megabytes at most). Every
/// problem a user can cause (a file from another tool, a copy cut short, data prepared with another
/// tokenizer) is a <see cref="UserException"/> that names the file and the fix.
/// </summary>
public sealed class Shard
{
    private Shard(string path, string tokenizerName, int vocabSize, int[] tokens)
    {
        Path = path;
        TokenizerName = tokenizerName;
        VocabSize = vocabSize;
        Tokens = tokens;
    }

    public string Path { get; }
    public string TokenizerName { get; }
    public int VocabSize { get; }
    public int[] Tokens { get; }

    public static Shard Open(string path, string? expectedTokenizer = null, int? expectedVocab = null)
    {
        if (!File.Exists(path))
        {
            throw Error(path, "does not exist");
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        Span<byte> header = stackalloc byte[ShardFormat.HeaderSize];
        if (stream.ReadAtLeast(header, header.Length, throwOnEndOfStream: false) < header.Length)
        {
            throw Error(path, $"is truncated: {stream.Length} bytes is shorter than the {ShardFormat.HeaderSize}-byte header");
        }

        if (!header[..8].SequenceEqual(ShardFormat.Magic))
        {
            throw Error(path, "is not a FlowHN token shard (bad magic bytes; expected \"FHNTOKS1\")");
        }

        var version = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
        if (version != ShardFormat.Version)
        {
            throw Error(path, $"has format version {version}, but this build reads version {ShardFormat.Version}");
        }

        var tokenizer = Encoding.ASCII.GetString(header.Slice(12, ShardFormat.TokenizerNameBytes)).TrimEnd('\0');
        var vocab = BinaryPrimitives.ReadInt32LittleEndian(header[28..]);
        var count = BinaryPrimitives.ReadInt64LittleEndian(header[32..]);
        var elementSize = BinaryPrimitives.ReadInt32LittleEndian(header[40..]);
        if (vocab < 1 || count < 0 || elementSize != ShardFormat.ElementSizeFor(vocab))
        {
            throw Error(path, $"has a corrupt header (vocab {vocab}, {count} tokens, element size {elementSize})");
        }

        if (count > Array.MaxLength)
        {
            throw Error(path, $"holds {count} tokens, more than one shard may hold ({Array.MaxLength}); split the corpus", fix: "");
        }

        var expectedBytes = ShardFormat.HeaderSize + count * elementSize;
        if (stream.Length < expectedBytes)
        {
            throw Error(path, $"is truncated: the header promises {count} tokens ({expectedBytes} bytes) but the file has {stream.Length} bytes");
        }

        if (stream.Length > expectedBytes)
        {
            throw Error(path, $"has {stream.Length - expectedBytes} unexpected bytes after its {count} tokens");
        }

        if (expectedTokenizer is not null && tokenizer != expectedTokenizer)
        {
            throw Error(path, $"was prepared with the '{tokenizer}' tokenizer, not '{expectedTokenizer}'",
                fix: $"Prepare the data with `flowhn prepare --tokenizer {expectedTokenizer}` (a new train run may instead use --tokenizer {tokenizer}).");
        }

        if (expectedVocab is not null && vocab != expectedVocab)
        {
            throw Error(path, $"has vocabulary size {vocab}, but {expectedVocab} was expected");
        }

        var tokens = ReadTokens(stream, (int)count, elementSize);
        for (var i = 0; i < tokens.Length; i++)
        {
            if ((uint)tokens[i] >= (uint)vocab)
            {
                throw Error(path, $"is corrupt: token {i} has id {tokens[i]}, outside the vocabulary (0..{vocab - 1})");
            }
        }

        return new Shard(path, tokenizer, vocab, tokens);
    }

    private static int[] ReadTokens(Stream stream, int count, int elementSize)
    {
        var tokens = new int[count];
        var buffer = new byte[1 << 16];
        var perChunk = buffer.Length / elementSize;
        for (var start = 0; start < count; start += perChunk)
        {
            var n = Math.Min(perChunk, count - start);
            stream.ReadExactly(buffer, 0, n * elementSize);
            for (var i = 0; i < n; i++)
            {
                tokens[start + i] = elementSize == 2
                    ? BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(2 * i))
                    : BinaryPrimitives.ReadInt32LittleEndian(buffer.AsSpan(4 * i));
            }
        }

        return tokens;
    }

    private static UserException Error(string path, string problem, string fix = "Re-run `flowhn prepare` to rebuild it.") =>
        new(fix.Length == 0 ? $"Token shard '{path}' {problem}." : $"Token shard '{path}' {problem}. {fix}");
}
