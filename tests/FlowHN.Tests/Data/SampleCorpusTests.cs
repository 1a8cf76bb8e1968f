using FlowHN.Data;

namespace FlowHN.Tests.Data;

/// <summary>The committed data/sample corpus: clean text that prepares with the default hold-out.</summary>
public class SampleCorpusTests
{
    private static string SampleFolder() => RepoPaths.Sample;

    [Fact]
    public void SamplePreparesWithTheDefaultValidationBooks()
    {
        using var folder = new TempFolder();
        var summary = CorpusPreparer.Prepare([SampleFolder()], new ByteTokenizer(), folder.Path, CorpusPreparer.DefaultValidationBooks.ToArray());

        Assert.Equal(2, summary.Validation.Documents);
        Assert.InRange(summary.Train.Documents, 2, 3);
        // No document may contain the byte tokenizer's end-of-text (NUL), else Prepare would have thrown;
        // sizes are bounded so the sample stays small enough to commit.
        Assert.InRange(summary.Train.Tokens + summary.Validation.Tokens, 100_000, 3_200_000);
    }

    [Fact]
    public void SampleTextIsCleaned()
    {
        var files = Directory.GetFiles(SampleFolder(), "*.txt");
        Assert.NotEmpty(files);
        foreach (var file in files)
        {
            var text = File.ReadAllText(file);
            Assert.DoesNotContain('\r', text);
            Assert.DoesNotContain("Project Gutenberg", text, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("<|endoftext|>", text);
            Assert.EndsWith("\n", text);
            Assert.False(text.EndsWith("\n\n", StringComparison.Ordinal), $"{file} ends with blank lines");
        }
    }
}
