using System.Diagnostics;
using System.Text;
using FlowHN.Cli;
using FlowHN.Training;

namespace FlowHN.Tests.Cli;

/// <summary>
/// The real `flowhn` executable as a child process, killed, signalled, starved of disk and fed faults at chosen
/// points. Each case checks the exit code, the one message line and the checkpoint that is left. Runs are tiny
/// (a one-layer Transformer, batch 1 x 8 tokens), so each process lives a few seconds.
/// </summary>
public class FaultInjectionTests
{
    private static readonly string Executable = Path.Combine(AppContext.BaseDirectory, "flowhn");

    private sealed class Child : IDisposable
    {
        private readonly StringBuilder output = new();
        private readonly StringBuilder error = new();
        public Process Process { get; }

        public Child(IEnumerable<string> args, string? fault = null)
        {
            var info = new ProcessStartInfo(Executable) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in args) info.ArgumentList.Add(a);
            if (fault is not null) info.Environment["FLOWHN_FAULT"] = fault;
            Process = new Process { StartInfo = info };
            Process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
            Process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (error) error.AppendLine(e.Data); };
            Process.Start();
            Process.BeginOutputReadLine();
            Process.BeginErrorReadLine();
        }

        public string Out { get { lock (output) return output.ToString(); } }
        public string Error { get { lock (error) return error.ToString(); } }

        public void WaitFor(string text, int seconds = 60)
        {
            var clock = Stopwatch.StartNew();
            while (!Out.Contains(text))
            {
                if (Process.HasExited && !Out.Contains(text)) Assert.Fail($"exited ({Process.ExitCode}) before '{text}': {Out}{Error}");
                Assert.True(clock.Elapsed.TotalSeconds < seconds, $"no '{text}' after {seconds} s: {Out}{Error}");
                Thread.Sleep(20);
            }
        }

        public int Exit(int seconds = 120)
        {
            Assert.True(Process.WaitForExit(seconds * 1000), $"still running after {seconds} s: {Out}{Error}");
            Process.WaitForExit(); // drains the output
            return Process.ExitCode;
        }

        public void Signal(string name) => Process.Start("kill", ["-" + name, Process.Id.ToString()])!.WaitForExit();

        public void Dispose()
        {
            if (!Process.HasExited) Process.Kill();
            Process.Dispose();
        }
    }

    private static string[] Train(string run, string cache, params string[] more) =>
    [
        "train", "--device", "cpu", "--arch", "transformer", "--data", RepoPaths.Sample, "--cache", cache, "--out", run,
        "--batch", "1", "--seq", "8", "--eval-batches", "1", "--eval-every", "100000", "--log-every", "1", .. more,
    ];

    private static void AssertOneErrorLine(Child child, string expected)
    {
        var lines = child.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, child.Error);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(expected, lines[0]);
        Assert.DoesNotContain("   at ", child.Out + child.Error);
    }

    private static int CheckpointStep(string run) => Checkpoint.LoadState(Checkpoint.PathIn(run)).Step;

    [Fact]
    public void AKillBetweenTheRenamesIsRepairedByEvalAndResume()
    {
        using var cache = new TempFolder();
        using var run = new TempFolder();
        using (var killed = new Child(Train(run.Path, cache.Path, "--steps", "4", "--checkpoint-every", "1"), "kill:between-renames"))
            Assert.Equal(137, killed.Exit()); // SIGKILL while promoting step 2's checkpoint over step 1's
        Assert.False(Directory.Exists(Checkpoint.PathIn(run.Path)));
        Assert.True(Directory.Exists(Checkpoint.OldIn(run.Path)) && Directory.Exists(Checkpoint.NextIn(run.Path)));

        using (var eval = new Child(["eval", "--device", "cpu", "--run", run.Path, "--data", RepoPaths.Sample, "--batch", "1", "--batches", "1"]))
        {
            Assert.True(eval.Exit() == 0, eval.Error);
            Assert.Contains("at step 2:", eval.Out);
        }
        using var resumed = new Child(["train", "--device", "cpu", "--resume", "--out", run.Path, "--cache", cache.Path]);
        Assert.True(resumed.Exit() == 0, resumed.Error);
        Assert.Equal(4, CheckpointStep(run.Path));
        Assert.Equal(4, File.ReadLines(Path.Combine(run.Path, "metrics.jsonl")).Count(l => l.Contains("\"train\"")));
    }

    [Fact]
    public void KillsAtRandomMomentsAlwaysLeaveACheckpointThatResumes()
    {
        using var cache = new TempFolder();
        using var run = new TempFolder();
        var random = new Random(13);
        int lastStep = 0;
        for (int i = 0; i < 3; i++)
        {
            string[] args = i == 0
                ? Train(run.Path, cache.Path, "--steps", "100000", "--checkpoint-every", "1")
                : ["train", "--device", "cpu", "--resume", "--out", run.Path, "--cache", cache.Path];
            using var child = new Child(args);
            child.WaitFor($"step {lastStep + 2,5}/"); // at least one save under way or done
            Thread.Sleep(random.Next(0, 400));
            child.Process.Kill(); // SIGKILL
            child.Exit();
            if (i > 0) Assert.Contains($"resumed from", child.Out);
            Checkpoint.Recover(run.Path);
            Assert.True(Checkpoint.IsComplete(Checkpoint.PathIn(run.Path), out string why), why);
            int step = CheckpointStep(run.Path);
            Assert.True(step > lastStep, $"iteration {i}: checkpoint step {step} after {lastStep}");
            lastStep = step;
        }
    }

    [Fact]
    public void SigtermSavesAndExits143AndASecondWriterIsRefused()
    {
        using var cache = new TempFolder();
        using var run = new TempFolder();
        using var first = new Child(Train(run.Path, cache.Path, "--steps", "100000", "--checkpoint-every", "1000"));
        first.WaitFor("step     2/");
        using (var second = new Child(Train(run.Path, cache.Path, "--steps", "3")))
        {
            Assert.Equal(2, second.Exit());
            AssertOneErrorLine(second, $"is in use by process {first.Process.Id}");
        }
        first.Signal("TERM");
        Assert.True(first.Exit() == 143, first.Out + first.Error);
        var stopped = System.Text.RegularExpressions.Regex.Match(first.Out, @"stopped at step (\d+); checkpoint saved");
        Assert.True(stopped.Success, first.Out);
        Assert.Equal(int.Parse(stopped.Groups[1].Value), CheckpointStep(run.Path));
        Assert.False(File.Exists(Path.Combine(run.Path, RunLock.FileName)));
    }

    [Fact]
    public void ANanAtAChosenStepExits3NamingTheLastGoodCheckpoint()
    {
        using var cache = new TempFolder();
        using var run = new TempFolder();
        using var child = new Child(Train(run.Path, cache.Path, "--steps", "6", "--checkpoint-every", "2"), "nan:step-4");
        Assert.Equal(3, child.Exit());
        AssertOneErrorLine(child, "The loss became NaN at step 4");
        Assert.Contains("(step 2)", child.Error);
        Assert.Equal(2, CheckpointStep(run.Path));
        Assert.False(Directory.Exists(Checkpoint.NextIn(run.Path))); // nothing unconfirmed is left behind
    }

    [Fact]
    public void ANanAtAStepThatIsNotReadStopsAtTheNextReadBeforeItsCheckpointIsPromoted()
    {
        using var cache = new TempFolder();
        using var run = new TempFolder();
        // Steps 4 and 5 are neither logged nor saved, so their losses stay on the device until step 6 reads them
        // before its save: the NaN injected into the device's step log at step 5 must stop the run there.
        string[] args =
        [
            "train", "--device", "cpu", "--arch", "transformer", "--data", RepoPaths.Sample, "--cache", cache.Path, "--out", run.Path,
            "--batch", "1", "--seq", "8", "--eval-batches", "1", "--eval-every", "100000", "--log-every", "100",
            "--steps", "8", "--checkpoint-every", "3",
        ];
        using var child = new Child(args, "nan:step-5");
        Assert.Equal(3, child.Exit());
        AssertOneErrorLine(child, "The loss became NaN at step 5");
        Assert.Contains("(step 3)", child.Error);
        Assert.Equal(3, CheckpointStep(run.Path));
        Assert.False(Directory.Exists(Checkpoint.NextIn(run.Path)));
    }

    [Fact]
    public void ANanEvaluationMidRunIsLoggedAsNullAndExits3NamingACheckpointThatLoads()
    {
        using var cache = new TempFolder();
        using var run = new TempFolder();
        string[] args =
        [
            "train", "--device", "cpu", "--arch", "transformer", "--data", RepoPaths.Sample, "--cache", cache.Path, "--out", run.Path,
            "--batch", "2", "--seq", "16", "--eval-batches", "1", "--log-every", "1", "--steps", "4", "--eval-every", "2",
            "--checkpoint-every", "1",
        ];
        using (var child = new Child(args, "nan:eval-2"))
        {
            Assert.Equal(3, child.Exit());
            AssertOneErrorLine(child, "The validation loss became NaN at step 2");
            Assert.Contains($"{Checkpoint.PathIn(run.Path)} (step 1)", child.Error);
        }
        var records = File.ReadLines(Path.Combine(run.Path, "metrics.jsonl")).Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!).ToList();
        var eval = Assert.Single(records, r => (string?)r["type"] == "eval" && (int)r["step"]! == 2);
        Assert.Null(eval["val_loss"]);
        Assert.Equal(["val_loss", "val_ppl"], eval["non_finite"]!.AsArray().Select(n => (string?)n).Order());
        Assert.DoesNotContain(records, r => (int)r["step"]! > 2); // the run stopped there
        Assert.Equal(1, CheckpointStep(run.Path)); // the NaN weights of step 2 were never saved
        Assert.False(Directory.Exists(Checkpoint.NextIn(run.Path)));

        using var evaluated = new Child(["eval", "--device", "cpu", "--run", run.Path, "--data", RepoPaths.Sample, "--batch", "2", "--batches", "1"]);
        Assert.True(evaluated.Exit() == 0, evaluated.Error);
        Assert.Matches(@"at step 1: validation loss \d", evaluated.Out);
    }

    [Fact]
    public void AnUnexpectedExceptionGivesOneLineAndACrashLogAndLeavesTheCheckpoint()
    {
        using var cache = new TempFolder();
        using var run = new TempFolder();
        Assert.Equal(0, FlowHnCli.Run(Train(run.Path, cache.Path, "--steps", "2"), TextWriter.Null, TextWriter.Null));
        using var child = new Child(["train", "--device", "cpu", "--resume", "--out", run.Path, "--cache", cache.Path, "--extend", "--steps", "4"],
            "throw:after-save");
        Assert.Equal(CrashReport.ExitCode, child.Exit());
        AssertOneErrorLine(child, "unexpected InvalidOperationException: injected fault at after-save");
        Assert.Contains("crash.log", child.Error);
        Assert.Contains("injected fault", File.ReadAllText(Path.Combine(run.Path, "crash.log")));
        Assert.Equal(2, CheckpointStep(run.Path));
        Assert.True(Checkpoint.IsComplete(Checkpoint.PathIn(run.Path), out string why), why);
    }

    /// <summary>A 16 MiB tmpfs holds one checkpoint (10 MiB) but not a second beside it. Needs root to mount.</summary>
    [Fact]
    public void AFullDiskDuringASaveKeepsTheLastCheckpoint()
    {
        if (Environment.UserName != "root") return; // mounting needs root; every other case runs anywhere
        using var cache = new TempFolder();
        using var mount = new TempFolder();
        var mounted = Process.Start("mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", mount.Path])!;
        mounted.WaitForExit();
        if (mounted.ExitCode != 0) return;
        try
        {
            string run = Path.Combine(mount.Path, "run");
            using var child = new Child(Train(run, cache.Path, "--steps", "4", "--checkpoint-every", "1"));
            Assert.Equal(2, child.Exit());
            AssertOneErrorLine(child, "The disk is full");
            Assert.Equal(1, CheckpointStep(run));
            Assert.True(Checkpoint.IsComplete(Checkpoint.PathIn(run), out string why), why);
        }
        finally
        {
            Process.Start("umount", [mount.Path])!.WaitForExit();
        }
    }

    [Fact]
    public void ABadOptionInARealProcessIsOneLineAndExit2()
    {
        using var run = new TempFolder();
        using var child = new Child(["train", "--device", "cpu", "--seq", "1", "--out", run.Path]);
        Assert.Equal(2, child.Exit());
        AssertOneErrorLine(child, "--seq must be at least 2 tokens (got 1)");
    }
}
