using System.Buffers.Binary;

namespace FlowHN.Data;

/// <summary>Writes a token shard (see <see cref="ShardFormat"/>) atomically.</summary>
public static class ShardWriter
{
    /// <summary>
    /// Writes to a temporary file named for this process and renames, so a crash or a full disk never leaves a
    /// half shard under the real name, and processes preparing the same cache at once (the ranks of a
    /// data-parallel job) never write one file together. Token ids are checked against the vocabulary before anything is written.
    /// </summary>
    public static void Write(string path, string tokenizerName, int vocabSize, ReadOnlySpan<int> tokens)
    {
        ShardFormat.CheckTokenizerName(tokenizerName);
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabSize, 1);
        for (var i = 0; i < tokens.Length; i++)
        {
            if ((uint)tokens[i] >= (uint)vocabSize)
            {
                throw new ArgumentOutOfRangeException(nameof(tokens), $"Token {tokens[i]} at index {i} is outside the vocabulary (0..{vocabSize - 1}).");
            }
        }

        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null)
        {
            Directory.CreateDirectory(directory);
        }

        var tmp = TemporaryPath(path);
        try
        {
            using (var stream = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
            {
                Span<byte> header = stackalloc byte[ShardFormat.HeaderSize];
                ShardFormat.WriteHeader(header, tokenizerName, vocabSize, tokens.Length);
                stream.Write(header);
                WriteTokens(stream, tokens, ShardFormat.ElementSizeFor(vocabSize));
                stream.Flush(flushToDisk: true);
            }

            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            File.Delete(tmp);
            throw;
        }
    }

    private static void WriteTokens(Stream stream, ReadOnlySpan<int> tokens, int elementSize)
    {
        // Encode through a fixed buffer: explicit little-endian on any host, no copy of the whole array.
        var buffer = new byte[1 << 16];
        var perChunk = buffer.Length / elementSize;
        for (var start = 0; start < tokens.Length; start += perChunk)
        {
            var chunk = tokens.Slice(start, Math.Min(perChunk, tokens.Length - start));
            for (var i = 0; i < chunk.Length; i++)
            {
                if (elementSize == 2)
                {
                    BinaryPrimitives.WriteUInt16LittleEndian(buffer.AsSpan(2 * i), (ushort)chunk[i]);
                }
                else
                {
                    BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(4 * i), chunk[i]);
                }
            }

            stream.Write(buffer, 0, chunk.Length * elementSize);
        }
    }

    /// <summary>Where <paramref name="path"/> is written before its rename: unique to this process.</summary>
    public static string TemporaryPath(string path) => $"{path}.{Environment.ProcessId}.tmp";
}
