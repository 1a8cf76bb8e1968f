using FlowHN.Cli;

namespace FlowHN.Tests.Cli;

public class CliTests
{
    private static (int Code, string Out, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = FlowHnCli.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public void HelpListsTheCommands()
    {
        var (code, output, _) = Run("--help");
        Assert.Equal(0, code);
        Assert.Contains("check", output);
        Assert.Contains("info", output);
    }

    [Fact]
    public void CheckOnTheCpuPrintsAPassingTable()
    {
        var (code, output, _) = Run("check", "--device", "cpu");
        Assert.Equal(0, code);
        Assert.Contains("gemm.nn", output);
        Assert.Contains("cross-entropy.backward", output);
        Assert.DoesNotContain("FAIL", output);
        Assert.Contains(" 0 failed", output);
    }

    [Fact]
    public void UnknownDeviceGivesOneClearError()
    {
        var (code, output, error) = Run("check", "--device", "tpu");
        Assert.Equal(2, code);
        Assert.Equal("error: Unknown device 'tpu'. Use one of: auto, cuda, cpu.", error.Trim());
        Assert.DoesNotContain("   at ", error + output); // no stack trace
    }

    [Fact]
    public void CheckFilterThatMatchesNothingIsAUserError()
    {
        var (code, _, error) = Run("check", "--device", "cpu", "--filter", "no-such-kernel");
        Assert.Equal(2, code);
        Assert.Contains("No kernel check matches", error);
    }

    [Fact]
    public void InfoNamesThePeakUsedForMfu()
    {
        var (code, output, _) = Run("info", "--device", "cpu", "--peak-tflops", "2.5");
        Assert.Equal(0, code);
        Assert.Contains("2.5 TFLOP/s", output);
        Assert.Contains("user override", output);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void CpuThreadsCountsThreadsNotMultiprocessors(int threads)
    {
        var (code, output, error) = Run("info", "--device", "cpu", "--cpu-threads", threads.ToString());
        Assert.True(code == 0, error);
        // Groups of 2 threads (a warp of 2): N threads are N / 2 multiprocessors.
        Assert.Contains($"{threads / 2} multiprocessors, warp 2, 2 threads per group max, {threads} threads)", output);
    }

    [Fact]
    public void CpuThreadsThatDoNotFillWholeGroupsAreAUserError()
    {
        var (code, _, error) = Run("info", "--device", "cpu", "--cpu-threads", "3");
        Assert.Equal(2, code);
        Assert.Equal("error: --cpu-threads 3: the CPU accelerator runs groups of 2 threads, so use a multiple of 2.", error.Trim());
    }

    [Fact]
    public void TrainRunsWritesMetricsAndACheckpointAndRefusesToOverwrite()
    {
        using var run = new TempFolder();
        using var cache = new TempFolder();
        string[] args = ["train", "--device", "cpu", "--preset", "tiny", "--data", RepoPaths.Sample, "--cache", cache.Path,
            "--out", run.Path, "--steps", "2", "--batch", "2", "--seq", "16", "--eval-batches", "1", "--log-every", "1"];
        var (code, output, error) = Run(args);
        Assert.True(code == 0, error);
        Assert.Contains("step     2/2", output);
        Assert.Contains("MFU", output);
        Assert.Contains("val loss", output);
        Assert.True(File.Exists(Path.Combine(run.Path, "checkpoint", "model.safetensors")));
        Assert.Equal(2, File.ReadLines(Path.Combine(run.Path, "metrics.jsonl")).Count(l => l.Contains("\"train\"")));
        Assert.Contains("| training loss, last step |", File.ReadAllText(Path.Combine(run.Path, "report.md")));
        Assert.True(File.Exists(Path.Combine(run.Path, "loss.png")));

        var again = Run(args);
        Assert.Equal(2, again.Code);
        Assert.Contains("--resume", again.Error);
    }

    [Fact]
    public void TrainOnAMissingFolderIsAUserError()
    {
        var (code, _, error) = Run("train", "--device", "cpu", "--data", "/no/such/folder", "--steps", "1");
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", error);
        Assert.Contains("/no/such/folder", error);
    }

    [Fact]
    public void ModelsListsPresetsWithParameterCounts()
    {
        var (code, output, _) = Run("models", "--vocab", "256");
        Assert.Equal(0, code);
        Assert.Contains("transformer", output);
        Assert.Contains("tiny", output);
        Assert.Contains("853,120", output); // the tiny Transformer with a byte vocabulary
    }

    [Fact]
    public void TrainHelpListsEveryOptionWithItsDefault()
    {
        var (code, output, _) = Run("train", "--help");
        Assert.Equal(0, code);
        foreach (var option in new[] { "--arch", "--preset", "--data", "--steps", "--batch", "--seq", "--lr", "--accum", "--resume", "--device" })
            Assert.Contains(option, output);
        Assert.Contains("Default", output, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void RunningOutOfDeviceMemorySuggestsASmallerBatch()
    {
        using var run = new TempFolder();
        using var cache = new TempFolder();
        var (code, _, error) = Run("train", "--device", "cpu", "--memory-limit", "0.001", "--data", RepoPaths.Sample,
            "--cache", cache.Path, "--out", run.Path, "--steps", "1", "--batch", "64", "--seq", "256");
        Assert.Equal(2, code);
        Assert.Contains("Out of device memory", error);
        Assert.Contains("--batch", error);
        Assert.DoesNotContain("   at ", error);
    }

    [Fact]
    public void AStepThatCannotFitIsRefusedBeforeItStartsWithABatchThatFits()
    {
        using var cache = new TempFolder();
        string[] Train(TempFolder run, string batch) =>
        [
            "train", "--device", "cpu", "--memory-limit", "0.1", "--data", RepoPaths.Sample, "--cache", cache.Path, "--out", run.Path,
            "--steps", "1", "--eval-batches", "1", "--batch", batch, "--seq", "256",
        ];
        using var first = new TempFolder();
        var (code, _, error) = Run(Train(first, "64"));
        Assert.Equal(2, code);
        var suggestion = System.Text.RegularExpressions.Regex.Match(error, @"Use --batch (\d+) or less");
        Assert.True(suggestion.Success, error);
        using var second = new TempFolder();
        var (retry, output, retryError) = Run(Train(second, suggestion.Groups[1].Value));
        Assert.True(retry == 0, retryError);
        Assert.Contains("(predicted) of 0.1 GiB", output);
    }

    [Fact]
    public void TrainWithRecomputationReportsTheSameLossAsWithout()
    {
        using var cache = new TempFolder();
        string Train(params string[] extra)
        {
            using var run = new TempFolder();
            var (code, output, error) = Run([
                "train", "--device", "cpu", "--preset", "tiny", "--data", RepoPaths.Sample, "--cache", cache.Path, "--out", run.Path,
                "--steps", "2", "--eval-batches", "1", "--batch", "2", "--seq", "32", .. extra]);
            Assert.True(code == 0, error);
            return output;
        }
        string plain = Train(), recomputed = Train("--recompute");
        Assert.Contains("activation checkpointing: on", recomputed);
        string LastLoss(string output) => output.Split('\n').Last(line => line.StartsWith("step ")).Split('|')[1];
        Assert.Equal(LastLoss(plain), LastLoss(recomputed));
        var (refused, _, message) = Run("bench", "--device", "cpu", "--recompute", "--breakdown");
        Assert.Equal(2, refused);
        Assert.Contains("--recompute", message);
    }

    [Fact]
    public void BenchOnTheCpuWritesEveryArchitectureAndSplit()
    {
        using var output = new TempFolder();
        var (code, _, error) = Run("bench", "--device", "cpu", "--preset", "tiny", "--archs", "all", "--steps", "1", "--warmup", "0",
            "--seq", "16", "--vocab", "64", "--breakdown", "--out", output.Path);
        Assert.True(code == 0, error);
        string md = File.ReadAllText(Path.Combine(output.Path, "bench.md"));
        foreach (var arch in new[] { "transformer", "mamba", "mamba2", "shm", "jamba", "hymba" }) Assert.Contains($"| {arch} | - |", md);
        foreach (var split in new[] { "none", "ae/prefix", "fa/prefix", "fac/prefix" }) Assert.Contains($"| flowhn | {split} |", md);
        Assert.Contains("overlap fwd / bwd / step", md);
        Assert.EndsWith("overlap_fwd,overlap_bwd", File.ReadLines(Path.Combine(output.Path, "bench.csv")).First());
        // The breakdown table covers FlowHN's splits and the sequential hybrids' attention and Mamba layers.
        foreach (var row in new[] { "| shm | - |", "| jamba | - |", "| flowhn | fac/prefix |" })
            Assert.Equal(2, md.Split(row).Length - 1);
        Assert.Equal(1 + 10, File.ReadAllLines(Path.Combine(output.Path, "bench.csv")).Length);
        foreach (var chart in new[] { "bench-tps.png", "bench-breakdown.png", "bench-memory.png" })
        {
            Assert.Contains($"]({chart})", md); // embedded in bench.md
            Assert.True(File.Exists(Path.Combine(output.Path, chart)), chart);
        }
    }

    [Fact]
    public void BenchRunsBothSsmKindsWhereAnArchitectureChoosesOne()
    {
        using var output = new TempFolder();
        var (code, _, error) = Run("bench", "--device", "cpu", "--preset", "tiny", "--archs", "flowhn,mamba", "--splits", "none,fac",
            "--ssm", "mamba1,mamba2", "--steps", "1", "--warmup", "0", "--seq", "16", "--vocab", "64", "--out", output.Path);
        Assert.True(code == 0, error);
        string md = File.ReadAllText(Path.Combine(output.Path, "bench.md"));
        foreach (var row in new[] { "| flowhn | none |", "| flowhn | fac/prefix |", "| flowhn+mamba2 | none |", "| flowhn+mamba2 | fac/prefix |", "| mamba | - |" })
            Assert.Contains(row, md);
        Assert.DoesNotContain("mamba+mamba2", md);
        Assert.Equal(1 + 5, File.ReadAllLines(Path.Combine(output.Path, "bench.csv")).Length);
    }

    [Fact]
    public void BenchMeasuresTheSplitRatioWhenAskedAndSaysHowBranchStreamsAreMade()
    {
        using var output = new TempFolder();
        var (code, stdout, error) = Run("bench", "--device", "cpu", "--preset", "tiny", "--archs", "flowhn", "--splits", "none,fa",
            "--split-ratio", "time", "--steps", "1", "--warmup", "0", "--seq", "16", "--vocab", "64", "--out", output.Path);
        Assert.True(code == 0, error);
        // Only the FLOP-aware split has a ratio to measure; no split has none.
        Assert.Single(stdout.Split('\n'), line => line.Contains("--split-ratio time: measured times balance at an attention share of"));
        Assert.Contains("flowhn fa/prefix: --split-ratio time", stdout);
        Assert.Contains("branch streams: off (the CPU accelerator runs streams one after the other)", stdout);
        Assert.Contains("split ratio time", File.ReadAllText(Path.Combine(output.Path, "bench.md")));
    }

    [Fact]
    public void GenerateReadsATrainedRunAndEvalNamesAMissingCheckpoint()
    {
        using var run = new TempFolder();
        using var cache = new TempFolder();
        var trained = Run("train", "--device", "cpu", "--preset", "tiny", "--data", RepoPaths.Sample, "--cache", cache.Path,
            "--out", run.Path, "--steps", "2", "--batch", "2", "--seq", "16", "--eval-batches", "1");
        Assert.True(trained.Code == 0, trained.Error);

        var generated = Run("generate", "--device", "cpu", "--run", run.Path, "--prompt", "Alice", "--tokens", "5", "--temperature", "0");
        Assert.True(generated.Code == 0, generated.Error);
        Assert.StartsWith("Alice", generated.Out);
        Assert.True(generated.Out.TrimEnd('\n').Length >= "Alice".Length + 1);

        var missing = Run("eval", "--device", "cpu", "--run", Path.Combine(run.Path, "nothing-here"));
        Assert.Equal(2, missing.Code);
        Assert.Contains("No checkpoint", missing.Error);
    }
}
