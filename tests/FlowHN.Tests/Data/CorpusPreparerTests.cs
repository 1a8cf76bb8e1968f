using FlowHN.Data;
using FlowHN.Runtime;

namespace FlowHN.Tests.Data;

public class CorpusPreparerTests
{
    private static TempFolder ThreeDocuments()
    {
        var folder = new TempFolder();
        folder.Write("text/alpha.txt", "Alpha one.");
        folder.Write("text/beta.txt", "Beta\r\ntwo.");
        folder.Write("text/gamma.txt", "Gamma three!");
        folder.Write("text/notes.md", "not a document");
        return folder;
    }

    [Fact]
    public void ValidationNamedDocumentGoesToValidationAndDocumentsEndWithEndOfText()
    {
        using var folder = ThreeDocuments();
        var tokenizer = new ByteTokenizer();
        var outDir = folder.File("out");

        var summary = CorpusPreparer.Prepare([folder.File("text")], tokenizer, outDir, ["beta"]);

        var train = Shard.Open(Path.Combine(outDir, "train.bin"), "bytes", 256).Tokens;
        var validation = Shard.Open(Path.Combine(outDir, "val.bin"), "bytes", 256).Tokens;
        Assert.Equal([.. tokenizer.Encode("Alpha one."), 0, .. tokenizer.Encode("Gamma three!"), 0], train);
        Assert.Equal([.. tokenizer.Encode("Beta\ntwo."), 0], validation); // CRLF read as LF

        Assert.Equal(new SplitSummary(2, train.Length), summary.Train);
        Assert.Equal(new SplitSummary(1, validation.Length), summary.Validation);

        var meta = CorpusMeta.Load(outDir);
        Assert.Equal(("bytes", 256, 0), (meta.Tokenizer, meta.VocabSize, meta.EndOfText));
        Assert.Equal(["alpha", "gamma"], meta.Train.Documents.Select(d => d.Name));
        Assert.Equal(["beta"], meta.Validation.Documents.Select(d => d.Name));
        Assert.Equal(["beta"], meta.ValidationNames);
        Assert.Equal(11, meta.Train.Documents[0].Tokens); // 10 bytes + end-of-text
        Assert.Equal(new FileInfo(folder.File("text/beta.txt")).Length, meta.Validation.Documents[0].Bytes);
    }

    [Fact]
    public void Gpt2SplitsDocumentsWithItsEndOfTextId()
    {
        using var folder = ThreeDocuments();
        var outDir = folder.File("out");
        CorpusPreparer.Prepare([folder.File("text")], new Gpt2Tokenizer(), outDir, ["gamma.txt"]);

        var train = Shard.Open(Path.Combine(outDir, "train.bin"), "gpt2", 50257).Tokens;
        var ends = train.Select((t, i) => (t, i)).Where(x => x.t == 50256).Select(x => x.i).ToArray();
        Assert.Equal(2, ends.Length);
        Assert.Equal(train.Length - 1, ends[1]);
        Assert.Equal("Alpha one.", new Gpt2Tokenizer().Decode(train[..ends[0]]));
    }

    [Fact]
    public void UnknownValidationNameListsAvailableDocuments()
    {
        using var folder = ThreeDocuments();
        var error = Assert.Throws<UserException>(() =>
            CorpusPreparer.Prepare([folder.File("text")], new ByteTokenizer(), folder.File("out"), CorpusPreparer.DefaultValidationBooks.ToArray()));
        Assert.Contains("austen-persuasion", error.Message);
        Assert.Contains("--val", error.Message);
        Assert.Contains("alpha", error.Message);
        Assert.False(File.Exists(folder.File("out/meta.json")));
    }

    [Fact]
    public void HoldingOutEverythingIsRejected()
    {
        using var folder = ThreeDocuments();
        Assert.Throws<UserException>(() =>
            CorpusPreparer.Prepare([folder.File("text")], new ByteTokenizer(), folder.File("out"), ["alpha", "beta", "gamma"]));
    }

    [Fact]
    public void MissingInputAndEmptyFolderAreUserErrors()
    {
        using var folder = new TempFolder();
        var missing = folder.File("nope");
        Assert.Contains(missing, Assert.Throws<UserException>(() =>
            CorpusPreparer.Prepare([missing], new ByteTokenizer(), folder.File("out"), ["x"])).Message);

        Directory.CreateDirectory(folder.File("empty"));
        Assert.Contains("No .txt files", Assert.Throws<UserException>(() =>
            CorpusPreparer.Prepare([folder.File("empty")], new ByteTokenizer(), folder.File("out"), ["x"])).Message);
    }

    [Fact]
    public void DocumentContainingTheEndOfTextMarkerIsRejected()
    {
        using var folder = ThreeDocuments();
        var bad = folder.Write("text/zeta.txt", "before\0after");
        var error = Assert.Throws<UserException>(() =>
            CorpusPreparer.Prepare([folder.File("text")], new ByteTokenizer(), folder.File("out"), ["beta"]));
        Assert.Contains(bad, error.Message);
    }

    [Fact]
    public void DuplicateDocumentNamesAreRejected()
    {
        using var folder = ThreeDocuments();
        folder.Write("other/alpha.txt", "Another alpha.");
        var error = Assert.Throws<UserException>(() =>
            CorpusPreparer.Prepare([folder.File("text"), folder.File("other")], new ByteTokenizer(), folder.File("out"), ["beta"]));
        Assert.Contains("'alpha'", error.Message);
    }
}
