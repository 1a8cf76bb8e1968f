using System.Text;
using FlowHN.Data;

namespace FlowHN.Tests.Data;

public class TextFileTests
{
    [Fact]
    public void InvalidUtf8IsCountedAndReplacedLikeTheDefaultDecoder()
    {
        byte[] bytes = [.. "ok "u8, 0xFF, .. " and "u8, 0xC3, .. " end "u8, .. "\u00e9\uFFFD"u8]; // two bad sequences, a real U+FFFD
        string text = TextFile.Decode(bytes, out int invalid);
        Assert.Equal(2, invalid);
        Assert.Equal(Encoding.UTF8.GetString(bytes), text);
        Assert.Equal("caf\u00e9", TextFile.Decode([0xEF, 0xBB, 0xBF, .. "caf\u00e9"u8], out int none));
        Assert.Equal(0, none);
    }

    [Fact]
    public void PrepareNamesTheFileWithInvalidUtf8()
    {
        using var folder = new TempFolder();
        folder.Write("books/a.txt", "Plain text.");
        File.WriteAllBytes(folder.File("books/b.txt"), [.. "Latin-1 caf"u8, 0xE9, .. " and na"u8, 0xEF, .. "ve"u8]);
        var summary = CorpusPreparer.Prepare([folder.File("books")], new ByteTokenizer(), folder.File("out"), ["a"]);
        var warning = Assert.Single(summary.Warnings);
        Assert.Contains("b.txt", warning);
        Assert.Contains("2 byte sequence(s) that are not valid UTF-8", warning);
    }

    /// <summary>An edit that keeps the size and restores the time is still seen (the cache key hashes the bytes).</summary>
    [Fact]
    public void ASameSizeEditWithTheOldTimeRebuildsTheCache()
    {
        using var folder = new TempFolder();
        folder.Write("books/austen-persuasion.txt", "Sir Walter Elliot, of Kellynch Hall.");
        folder.Write("books/chesterton-thursday.txt", "The suburb of Saffron Park.");
        string alice = folder.Write("books/carroll-alice.txt", "Alice was beginning to get very tired.");
        var first = DataSource.Open(folder.File("books"), "bytes", folder.File("cache"));
        var time = File.GetLastWriteTimeUtc(alice);
        File.WriteAllText(alice, "Alice was beginning to get very TIRED.");
        File.SetLastWriteTimeUtc(alice, time);
        var second = DataSource.Open(folder.File("books"), "bytes", folder.File("cache"));
        Assert.False(second.FromCache);
        Assert.NotEqual(first.Train, second.Train);
        Assert.True(DataSource.Open(folder.File("books"), "bytes", folder.File("cache")).FromCache);
    }
}
