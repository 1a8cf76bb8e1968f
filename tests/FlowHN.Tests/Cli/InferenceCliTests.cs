using FlowHN.Cli;

namespace FlowHN.Tests.Cli;

/// <summary>A tiny FlowHN run trained once (2 steps at 16 tokens) for the generate and eval tests.</summary>
public sealed class TrainedRun : IDisposable
{
    private readonly TempFolder cache = new();

    public TrainedRun()
    {
        var (code, _, error) = InferenceCliTests.Run("train", "--device", "cpu", "--preset", "tiny", "--data", RepoPaths.Sample,
            "--cache", cache.Path, "--out", Folder.Path, "--steps", "2", "--batch", "2", "--seq", "16", "--eval-batches", "1");
        Assert.True(code == 0, error);
    }

    public TempFolder Folder { get; } = new();

    public void Dispose()
    {
        Folder.Dispose();
        cache.Dispose();
    }
}

public class InferenceCliTests(TrainedRun run) : IClassFixture<TrainedRun>
{
    internal static (int Code, string Out, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = FlowHnCli.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private (int Code, string Out, string Error) Generate(params string[] args) =>
        Run(["generate", "--device", "cpu", "--run", run.Folder.Path, .. args]);

    [Theory]
    [InlineData("--temperature", "-1", "error: --temperature must be a finite number >= 0")]
    [InlineData("--temperature", "NaN", "error: --temperature must be a finite number >= 0")]
    [InlineData("--top-k", "-2", "error: --top-k must be >= 0")]
    [InlineData("--top-p", "0", "error: --top-p must lie in (0, 1]")]
    [InlineData("--top-p", "1.5", "error: --top-p must lie in (0, 1]")]
    [InlineData("--tokens", "-1", "error: --tokens must be >= 0")]
    [InlineData("--max-context", "1", "error: --max-context must be at least 2 tokens")]
    public void BadGenerateOptionsGiveOneErrorLine(string option, string value, string message)
    {
        var (code, output, error) = Generate(option, value);
        Assert.Equal(2, code);
        Assert.StartsWith(message, error.Trim());
        Assert.Single(error.Trim().Split('\n'));
        Assert.DoesNotContain("   at ", error + output);
    }

    [Fact]
    public void GenerateContinuesSeveralPromptsAndReportsItsSpeed()
    {
        var (code, output, error) = Generate("--prompt", "Alice", "--prompt", "Anne said", "--tokens", "5", "--temperature", "0");
        Assert.True(code == 0, error);
        Assert.Contains("--- prompt 1\nAlice", output);
        Assert.Contains("--- prompt 2\nAnne said", output);
        Assert.Matches(@"cached: prefill \d+ tokens in [\d.]+ s \([\d.]+ tokens/s\), decode \d+ tokens", error);
    }

    [Fact]
    public void ALongPromptIsCutToTheTrainedLengthWithANotice()
    {
        string prompt = string.Join(" ", Enumerable.Repeat("Anne walked to the sea", 10));
        var (code, output, error) = Generate("--prompt", prompt, "--tokens", "3", "--temperature", "0", "--compare-uncached");
        Assert.True(code == 0, error);
        Assert.Matches(@"note: prompt 1 has \d+ tokens; keeping its last 13 to leave room for 3 new in --max-context 16", error);
        Assert.Contains("uncached: prefill", error);
        Assert.Contains("tokens identical", error);
        Assert.False(output.StartsWith(prompt), "the printed text starts where the kept context starts");
    }

    [Fact]
    public void EvalWithNoTaskRunsValidationAndBothBuiltInSets()
    {
        string json = run.Folder.File("default/results.json");
        var (code, output, error) = Run("eval", "--device", "cpu", "--run", run.Folder.Path, "--data", RepoPaths.Sample, "--batches", "1",
            "--eval-sets", Path.Combine(RepoPaths.Root, "data", "eval"), "--batch", "16", "--out", json);
        Assert.True(code == 0, error);
        Assert.Matches(@"flowhn/tiny at step 2: validation loss \d+\.\d{4}, perplexity", output);
        Assert.Matches(@"\| lambada \| .*cloze.jsonl \| 300 \| acc \| 0\.\d{4} \|", output);
        Assert.Matches(@"\| choice \| .*next-sentence.jsonl \| 300 \| acc_norm \| 0\.\d{4} \|", output);
        Assert.Contains("lambada [##############################] 300/300", error);
        Assert.Contains("\"acc_norm\":", File.ReadAllText(json));
        Assert.Contains("| validation |", File.ReadAllText(Path.ChangeExtension(json, ".md")));
    }

    [Fact]
    public void EvalTasksReadTheirFilesAndNameBadLines()
    {
        using var data = new TempFolder();
        string cloze = data.Write("cloze.jsonl", "{\"text\": \"Anne walked by the sea and saw the sea\"}\n");
        var (code, output, error) = Run("eval", "--device", "cpu", "--run", run.Folder.Path, "--task", "lambada", "--data", cloze,
            "--out", data.File("r.json"));
        Assert.True(code == 0, error);
        Assert.Matches(@"\| lambada \| .* \| 1 \| ppl \| \d+\.\d{3} \|", output);

        string text = data.Write("texts/a.txt", "It was a bright cold day in April.");
        (code, output, error) = Run("eval", "--device", "cpu", "--run", run.Folder.Path, "--task", "ppl", "--data", data.File("texts"),
            "--out", data.File("p.json"));
        Assert.True(code == 0, error);
        Assert.Contains("| ppl | ", output);
        Assert.Contains("bits_per_byte", output);

        string bad = data.Write("bad.jsonl", "{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n{\"context\": \"c\", \"gold\": 0}\n");
        (code, _, error) = Run("eval", "--device", "cpu", "--run", run.Folder.Path, "--task", "choice", "--data", bad);
        Assert.Equal(2, code);
        Assert.Equal($"error: {bad} line 2: field 'choices' is missing or not an array of strings.", error.Trim());

        (code, _, error) = Run("eval", "--device", "cpu", "--run", run.Folder.Path, "--task", "choice");
        Assert.Equal("error: --task choice needs --data (a JSONL file).", error.Trim());
        (code, _, error) = Run("eval", "--device", "cpu", "--run", run.Folder.Path, "--task", "hellaswag", "--data", bad);
        Assert.StartsWith("error: Unknown --task 'hellaswag'", error.Trim());
    }
}
