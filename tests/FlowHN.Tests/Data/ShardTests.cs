using System.Buffers.Binary;
using FlowHN.Data;
using FlowHN.Runtime;

namespace FlowHN.Tests.Data;

public class ShardTests
{
    private static int[] RandomTokens(int count, int vocab, int seed)
    {
        var random = new Random(seed);
        var tokens = new int[count];
        for (var i = 0; i < count; i++)
        {
            tokens[i] = random.Next(vocab);
        }

        tokens[0] = vocab - 1; // the largest id must survive the element size
        return tokens;
    }

    [Theory]
    [InlineData("gpt2", 50257, 2)]
    [InlineData("bytes", 256, 2)]
    [InlineData("big", 70000, 4)]
    public void WriteThenReadRoundTrips(string name, int vocab, int elementSize)
    {
        using var folder = new TempFolder();
        var path = folder.File("t.bin");
        // More tokens than one internal 64 KiB chunk holds, so chunk boundaries are crossed.
        var tokens = RandomTokens(40_000, vocab, seed: vocab);

        ShardWriter.Write(path, name, vocab, tokens);
        var shard = Shard.Open(path, name, vocab);

        Assert.Equal(tokens, shard.Tokens);
        Assert.Equal((name, vocab), (shard.TokenizerName, shard.VocabSize));
        Assert.Equal(ShardFormat.HeaderSize + (long)tokens.Length * elementSize, new FileInfo(path).Length);
        Assert.False(File.Exists(ShardWriter.TemporaryPath(path)));
    }

    [Fact]
    public void HeaderLayoutIsAsDocumented()
    {
        using var folder = new TempFolder();
        var path = folder.File("t.bin");
        ShardWriter.Write(path, "gpt2", 50257, [50256, 1, 2]);
        var bytes = File.ReadAllBytes(path);

        Assert.Equal("FHNTOKS1"u8.ToArray(), bytes[..8]);
        Assert.Equal(1, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8)));
        Assert.Equal("gpt2\0\0\0\0\0\0\0\0\0\0\0\0"u8.ToArray(), bytes[12..28]);
        Assert.Equal(50257, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(28)));
        Assert.Equal(3L, BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(32)));
        Assert.Equal(2, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(40)));
        Assert.Equal(50256, BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(44)));
    }

    [Fact]
    public void WriterRejectsIdsOutsideTheVocabularyAndLeavesNoFile()
    {
        using var folder = new TempFolder();
        var path = folder.File("t.bin");
        Assert.Throws<ArgumentOutOfRangeException>(() => ShardWriter.Write(path, "bytes", 256, [1, 256]));
        Assert.False(File.Exists(path));
        Assert.False(File.Exists(ShardWriter.TemporaryPath(path)));
    }

    private static UserException Corrupt(Action<string> damage, string? tokenizer = null, int? vocab = null)
    {
        using var folder = new TempFolder();
        var path = folder.File("broken.bin");
        ShardWriter.Write(path, "bytes", 256, [10, 20, 30, 40]);
        damage(path);
        var error = Assert.Throws<UserException>(() => Shard.Open(path, tokenizer, vocab));
        Assert.Contains(path, error.Message);
        return error;
    }

    private static void Patch(string path, int offset, params byte[] bytes)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Write);
        stream.Position = offset;
        stream.Write(bytes);
    }

    [Fact]
    public void RejectsBadMagic() =>
        Assert.Contains("magic", Corrupt(p => Patch(p, 0, (byte)'X')).Message);

    [Fact]
    public void RejectsUnknownVersion() =>
        Assert.Contains("version 7", Corrupt(p => Patch(p, 8, 7)).Message);

    [Fact]
    public void RejectsTruncatedTokens()
    {
        var error = Corrupt(p => File.WriteAllBytes(p, File.ReadAllBytes(p)[..^1]));
        Assert.Contains("truncated", error.Message);
        Assert.Contains("flowhn prepare", error.Message);
    }

    [Fact]
    public void RejectsTruncatedHeader() =>
        Assert.Contains("truncated", Corrupt(p => File.WriteAllBytes(p, File.ReadAllBytes(p)[..20])).Message);

    [Fact]
    public void RejectsWrongVocab() =>
        Assert.Contains("vocabulary size 256", Corrupt(_ => { }, vocab: 50257).Message);

    [Fact]
    public void RejectsWrongTokenizer()
    {
        var error = Corrupt(_ => { }, tokenizer: "gpt2");
        Assert.Contains("'bytes' tokenizer", error.Message);
        Assert.Contains("--tokenizer", error.Message);
    }

    [Fact]
    public void RejectsTokenIdOutOfRange()
    {
        // Lower the recorded vocabulary to 16 (still uint16): the stored ids 20..40 are then out of range.
        var error = Corrupt(p => Patch(p, 28, 16, 0, 0, 0));
        Assert.Contains("token 1 has id 20", error.Message);
    }

    [Fact]
    public void RejectsMissingFile()
    {
        using var folder = new TempFolder();
        var path = folder.File("missing.bin");
        Assert.Contains(path, Assert.Throws<UserException>(() => Shard.Open(path)).Message);
    }
}
