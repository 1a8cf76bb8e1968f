using FlowHN.Data;
using FlowHN.Runtime;

namespace FlowHN.Tests.Data;

public class DataSourceTests
{
    private static TempFolder Books()
    {
        var folder = new TempFolder();
        folder.Write("books/austen-persuasion.txt", "Sir Walter Elliot, of Kellynch Hall.");
        folder.Write("books/chesterton-thursday.txt", "The suburb of Saffron Park.");
        folder.Write("books/carroll-alice.txt", "Alice was beginning to get very tired.");
        return folder;
    }

    [Fact]
    public void TextFolderIsPreparedOnceThenReadFromTheCache()
    {
        using var folder = Books();
        var cache = folder.File("cache");

        var first = DataSource.Open(folder.File("books"), "bytes", cache);
        Assert.False(first.FromCache);
        Assert.NotNull(first.Prepared);
        Assert.Equal([.. new ByteTokenizer().Encode("Alice was beginning to get very tired."), 0], first.Train);
        Assert.Equal(2, first.Meta.Validation.Documents.Count); // the default hold-out books
        var trainShard = Path.Combine(first.Directory, "train.bin");
        var written = File.GetLastWriteTimeUtc(trainShard);

        var second = DataSource.Open(folder.File("books"), "bytes", cache);
        Assert.True(second.FromCache);
        Assert.Equal(written, File.GetLastWriteTimeUtc(trainShard));
        Assert.Equal(first.Train, second.Train);
        Assert.Equal(first.Validation, second.Validation);

        // Changed text invalidates the cache.
        File.AppendAllText(folder.File("books/carroll-alice.txt"), " So she was considering.");
        var third = DataSource.Open(folder.File("books"), "bytes", cache);
        Assert.False(third.FromCache);
        Assert.True(third.Train.Length > first.Train.Length);

        // Another tokenizer gets its own cache.
        var gpt2 = DataSource.Open(folder.File("books"), "gpt2", cache);
        Assert.False(gpt2.FromCache);
        Assert.Equal(("gpt2", 50257), (gpt2.TokenizerName, gpt2.VocabSize));
        Assert.True(DataSource.Open(folder.File("books"), "bytes", cache).FromCache);
    }

    [Fact]
    public void PreparedFolderRejectsAnotherTokenizer()
    {
        using var folder = Books();
        var prepared = folder.File("prepared");
        CorpusPreparer.Prepare([folder.File("books")], new ByteTokenizer(), prepared, CorpusPreparer.DefaultValidationBooks.ToArray());

        var data = DataSource.Open(prepared, "bytes", folder.File("cache"));
        Assert.True(data.FromCache);
        Assert.Equal(data.Meta.Train.Tokens, data.Train.Length);

        var error = Assert.Throws<UserException>(() => DataSource.Open(prepared, "gpt2", folder.File("cache")));
        Assert.Contains("prepared with the 'bytes' tokenizer", error.Message);
        Assert.Contains(prepared, error.Message);
    }

    [Fact]
    public void PreparedFolderRejectsAnotherValidationSplit()
    {
        using var folder = Books();
        var prepared = folder.File("prepared");
        CorpusPreparer.Prepare([folder.File("books")], new ByteTokenizer(), prepared, ["carroll-alice"]);
        Assert.Throws<UserException>(() => DataSource.Open(prepared, "bytes", folder.File("cache"), ["austen-persuasion"]));
        Assert.Equal(2, DataSource.Open(prepared, "bytes", folder.File("cache")).Meta.Train.Documents.Count);
    }

    [Fact]
    public void MissingOrEmptyFolderIsAUserError()
    {
        using var folder = new TempFolder();
        Assert.Throws<UserException>(() => DataSource.Open(folder.File("nope"), "bytes", folder.File("cache")));
        Directory.CreateDirectory(folder.File("empty"));
        Assert.Contains("neither", Assert.Throws<UserException>(() => DataSource.Open(folder.File("empty"), "bytes", folder.File("cache"))).Message);
    }
}
