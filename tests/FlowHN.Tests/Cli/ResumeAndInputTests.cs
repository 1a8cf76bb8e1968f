using System.Text.Json.Nodes;
using FlowHN.Cli;
using FlowHN.Training;

namespace FlowHN.Tests.Cli;

/// <summary>--resume with the run's own options, and one clear line for every bad input.</summary>
public class ResumeAndInputTests
{
    private static (int Code, string Out, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = FlowHnCli.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static string[] Tiny(string run, string cache, params string[] more) =>
    [
        "train", "--device", "cpu", "--arch", "transformer", "--data", RepoPaths.Sample, "--cache", cache, "--out", run,
        "--batch", "2", "--seq", "16", "--eval-batches", "1", "--eval-every", "1000", .. more,
    ];

    /// <summary>A single error line, naming <paramref name="expected"/>, with no stack trace.</summary>
    private static void AssertOneLine((int Code, string Out, string Error) result, string expected, int code = 2)
    {
        Assert.True(result.Code == code, $"exit {result.Code}: {result.Error}");
        var lines = result.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(expected, lines[0]);
        Assert.DoesNotContain("   at ", result.Out + result.Error);
    }

    private static IEnumerable<string> TrainRecords(string run) =>
        File.ReadLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).Where(n => (string?)n["type"] == "train")
            .Select(n => $"{n["step"]} {n["loss"]} {n["lr"]} {n["grad_norm"]}");

    [Fact]
    public void StopAfterThenResumeEqualsAnUninterruptedRunBitForBit()
    {
        using var cache = new TempFolder();
        using var whole = new TempFolder();
        using var parts = new TempFolder();
        var a = Run(Tiny(whole.Path, cache.Path, "--steps", "5", "--checkpoint-every", "2"));
        Assert.True(a.Code == 0, a.Error);
        var first = Run(Tiny(parts.Path, cache.Path, "--steps", "5", "--checkpoint-every", "2", "--stop-after", "3"));
        Assert.True(first.Code == 0, first.Error);
        Assert.Contains("stopped after step 3", first.Out);
        // The README's command: only --resume and --out (the cache is not part of the run).
        var second = Run("train", "--device", "cpu", "--resume", "--out", parts.Path, "--cache", cache.Path);
        Assert.True(second.Code == 0, second.Error);
        Assert.Contains("resumed from", second.Out);

        Assert.Equal(TrainRecords(whole.Path), TrainRecords(parts.Path));
        var x = Safetensors.Read(Path.Combine(Checkpoint.PathIn(whole.Path), "model.safetensors"));
        var y = Safetensors.Read(Path.Combine(Checkpoint.PathIn(parts.Path), "model.safetensors"));
        Assert.Equal(x.Keys.Order(), y.Keys.Order());
        foreach (var name in x.Keys) Assert.Equal(x[name].Data, y[name].Data);
        Assert.Equal(5, Checkpoint.LoadState(Checkpoint.PathIn(parts.Path)).Step);
    }

    [Fact]
    public void ResumeRefusesConflictingOptionsByNameAndExtendsOnlyWhenAsked()
    {
        using var cache = new TempFolder();
        using var run = new TempFolder();
        Assert.Equal(0, Run(Tiny(run.Path, cache.Path, "--steps", "2")).Code);

        var conflict = Run("train", "--device", "cpu", "--resume", "--out", run.Path, "--cache", cache.Path, "--batch", "4", "--arch", "mamba",
            "--lr", "1e-3", "--log-every", "1");
        AssertOneLine(conflict, "--batch 4 (the run uses 2)");
        Assert.Contains("--arch mamba (the run uses transformer)", conflict.Error);
        Assert.Contains("--lr 0.001 (the run uses 0.0003)", conflict.Error);
        Assert.DoesNotContain("--log-every 1", conflict.Error); // safe to change
        Assert.Contains("Safe to change on resume: --log-every", conflict.Error);

        var horizon = Run("train", "--device", "cpu", "--resume", "--out", run.Path, "--cache", cache.Path, "--steps", "3");
        AssertOneLine(horizon, "add --extend");

        var data = Run("train", "--device", "cpu", "--resume", "--out", run.Path, "--cache", cache.Path, "--data", cache.Path);
        AssertOneLine(data, "--data");

        var extended = Run("train", "--device", "cpu", "--resume", "--out", run.Path, "--cache", cache.Path, "--steps", "3", "--extend");
        Assert.True(extended.Code == 0, extended.Error);
        Assert.Contains("the schedule's horizon moves from step 2 to 3", extended.Out);
        Assert.Equal(3, Checkpoint.LoadState(Checkpoint.PathIn(run.Path)).Step);
    }

    [Theory]
    [InlineData("--seq 1", "--seq must be at least 2")]
    [InlineData("--warmup -0.1", "--warmup must be between 0 and 1 (got -0.1)")]
    [InlineData("--min-lr-fraction -1", "--min-lr-fraction must be between 0 and 1")]
    [InlineData("--weight-decay -0.5", "--weight-decay must be at least 0")]
    [InlineData("--grad-clip -1", "--grad-clip must be 0 (off) or positive")]
    [InlineData("--lr 0", "--lr must be a positive number")]
    [InlineData("--memory-limit -1", "--memory-limit must be")]
    [InlineData("--peak-tflops 0", "--peak-tflops must be a positive")]
    [InlineData("--preset huge", "--preset must be one of tiny")]
    [InlineData("--arch rnn", "--arch must be one of flowhn")]
    [InlineData("--steps abc", "'abc'")]
    [InlineData("--extend", "--extend changes the horizon of a run being resumed")]
    public void TrainRefusesABadOptionWithOneLine(string option, string expected)
    {
        using var run = new TempFolder();
        AssertOneLine(Run(["train", "--device", "cpu", "--data", "/no/data/needed/first", "--out", run.Path, .. option.Split(' ')]), expected);
    }

    [Theory]
    [InlineData("--batch 0", "--batch must be a positive")]
    [InlineData("--batches 0", "--batches must be a positive")]
    public void EvalRefusesABadOptionWithOneLine(string option, string expected)
    {
        using var run = new TempFolder();
        AssertOneLine(Run(["eval", "--device", "cpu", "--run", run.Path, .. option.Split(' ')]), expected);
    }

    [Theory]
    [InlineData("bench --device cpu --steps 0", "--steps must be a positive step count")]
    [InlineData("bench --device cpu --seq 1", "--seq must be 0 (the default) or at least 2")]
    [InlineData("models --batch -1", "--batch must be a positive")]
    [InlineData("models --vocab 1", "--vocab must be at least 2")]
    public void BenchAndModelsRefuseABadOptionWithOneLine(string command, string expected) =>
        AssertOneLine(Run(command.Split(' ')), expected);

    [Fact]
    public void BadFilesInARunFolderGiveOneLine()
    {
        using var cache = new TempFolder();
        using var run = new TempFolder();
        using var other = new TempFolder();
        AssertOneLine(Run(Tiny(other.Write("a-file", ""), cache.Path, "--steps", "1")), "is a file, not a folder");
        Assert.Equal(0, Run(Tiny(run.Path, cache.Path, "--steps", "1")).Code);
        AssertOneLine(Run(Tiny(run.Path, cache.Path, "--steps", "1")), "already holds a checkpoint");

        string dir = Checkpoint.PathIn(run.Path);
        File.WriteAllText(Path.Combine(dir, "config.json"), "{ not json");
        AssertOneLine(Run("eval", "--device", "cpu", "--run", run.Path, "--data", RepoPaths.Sample), "config.json is not valid JSON");
        File.WriteAllText(Path.Combine(dir, "state.json"), "[1, 2");
        AssertOneLine(Run("train", "--device", "cpu", "--resume", "--out", run.Path, "--cache", cache.Path), "state.json is not valid JSON");

        // Messages name only options the command has (eval has no --resume or --out).
        using var empty = new TempFolder();
        var none = Run("eval", "--device", "cpu", "--run", empty.Path, "--data", RepoPaths.Sample);
        AssertOneLine(none, "No checkpoint");
        Assert.DoesNotContain("--resume", none.Error);
        Assert.DoesNotContain("--out", none.Error);

        // Metrics but no checkpoint: a fresh run refuses instead of truncating them.
        using var metricsOnly = new TempFolder();
        File.WriteAllText(Path.Combine(metricsOnly.Path, "metrics.jsonl"), "{\"type\":\"train\",\"step\":1}\n");
        AssertOneLine(Run(Tiny(metricsOnly.Path, cache.Path, "--steps", "1")), "already holds metrics.jsonl");
        Assert.Single(File.ReadAllLines(Path.Combine(metricsOnly.Path, "metrics.jsonl")));
    }

    [Fact]
    public void EvalOfWeightsWhoseLossIsNotFiniteExits3()
    {
        using var cache = new TempFolder();
        using var run = new TempFolder();
        Assert.Equal(0, Run(Tiny(run.Path, cache.Path, "--steps", "1")).Code);
        string model = Path.Combine(Checkpoint.PathIn(run.Path), "model.safetensors");
        var tensors = Safetensors.Read(model).Values
            .Select(e => e with { Data = e.Name == "final_norm.weight" ? Enumerable.Repeat(float.NaN, e.Data.Length).ToArray() : e.Data });
        Safetensors.Write(model, tensors.ToList()); // valid checksums, poisoned values
        AssertOneLine(Run("eval", "--device", "cpu", "--run", run.Path, "--data", RepoPaths.Sample, "--batches", "1"),
            "gives a loss of NaN", code: 3);
    }

    [Fact]
    public void AMetaJsonVocabularyThatDisagreesWithTheTokenizerIsRefused()
    {
        using var text = new TempFolder();
        using var prepared = new TempFolder();
        using var run = new TempFolder();
        text.Write("a.txt", string.Concat(Enumerable.Repeat("Some text to train on. ", 200)));
        text.Write("b.txt", string.Concat(Enumerable.Repeat("Other text to validate on. ", 200)));
        var prep = Run("prepare", "--input", text.Path, "--tokenizer", "bytes", "--out", prepared.Path, "--val", "b");
        Assert.True(prep.Code == 0, prep.Error);
        string meta = Path.Combine(prepared.Path, "meta.json");
        File.WriteAllText(meta, File.ReadAllText(meta).Replace("\"vocabSize\": 256", "\"vocabSize\": 100"));
        AssertOneLine(Run("train", "--device", "cpu", "--data", prepared.Path, "--out", run.Path, "--steps", "1"),
            "gives a vocabulary of 100");
    }
}
