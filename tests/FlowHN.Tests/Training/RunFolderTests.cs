using System.Diagnostics;
using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Training;

namespace FlowHN.Tests.Training;

/// <summary>The save protocol, its recovery, the run-folder lock and metrics.jsonl.</summary>
public class RunFolderTests
{
    private static readonly ModelConfig Small = new()
    {
        Arch = "transformer", VocabSize = 256, Dim = 16, Layers = 1, Heads = 2, KvHeads = 1, MlpHidden = 32,
    };

    private static TrainOptions Quick(int steps, int checkpointEvery = 1) => new()
    {
        Steps = steps, Batch = 2, SeqLen = 16, LearningRate = 3e-3, EvalEvery = 1000, EvalBatches = 1, CheckpointEvery = checkpointEvery,
        LogEvery = 1000,
    };

    /// <summary>A run of <paramref name="steps"/> steps with a checkpoint after each (checkpoint = last step, checkpoint.next none).</summary>
    private static void Train(string runDir, TempFolder cache, int steps)
    {
        var device = TestDevice.Cpu;
        using var model = LanguageModel.Create(device, Small, seed: 3);
        using var trainer = new Trainer(device, model, DataSource.Open(RepoPaths.Sample, "bytes", cache.Path), Quick(steps), runDir, TextWriter.Null);
        trainer.Run();
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
    }

    [Fact]
    public void ACrashBetweenTheRenamesIsRepairedWithTheNewerCompleteCheckpoint()
    {
        using var cache = new TempFolder();
        using var early = new TempFolder();
        using var run = new TempFolder();
        Train(early.Path, cache, 1);
        Train(run.Path, cache, 2);
        // The state a crash between the renames leaves: checkpoint/ moved to .old, .next not yet moved in.
        Directory.Move(Checkpoint.PathIn(run.Path), Checkpoint.NextIn(run.Path));
        CopyDirectory(Checkpoint.PathIn(early.Path), Checkpoint.OldIn(run.Path));
        Assert.Contains("checkpoint.next", Checkpoint.Recover(run.Path));
        Assert.Equal(2, Checkpoint.LoadState(Checkpoint.PathIn(run.Path)).Step);
        Assert.True(Directory.Exists(Checkpoint.OldIn(run.Path))); // nothing deleted
        Assert.Null(Checkpoint.Recover(run.Path));
    }

    [Fact]
    public void ADamagedNewerCheckpointFallsBackToTheOldOne()
    {
        using var cache = new TempFolder();
        using var run = new TempFolder();
        Train(run.Path, cache, 1);
        Directory.Move(Checkpoint.PathIn(run.Path), Checkpoint.OldIn(run.Path));
        CopyDirectory(Checkpoint.OldIn(run.Path), Checkpoint.NextIn(run.Path));
        string model = Path.Combine(Checkpoint.NextIn(run.Path), "model.safetensors");
        var bytes = File.ReadAllBytes(model);
        bytes[^5] ^= 0xFF; // a flipped byte in the last tensor: the header is fine, the checksum is not
        File.WriteAllBytes(model, bytes);
        Assert.False(Checkpoint.IsComplete(Checkpoint.NextIn(run.Path), out string why));
        Assert.Contains("fails its checksum", why);
        Assert.Contains("checkpoint.old", Checkpoint.Recover(run.Path));
        Assert.True(Checkpoint.IsComplete(Checkpoint.PathIn(run.Path), out _));
    }

    [Fact]
    public void ASecondWriterIsRefusedAndAStaleLockIsTakenOver()
    {
        using var run = new TempFolder();
        using (var first = RunLock.Acquire(run.Path))
        {
            Assert.Null(first.TookOverFrom);
            var e = Assert.Throws<UserException>(() => RunLock.Acquire(run.Path));
            Assert.Contains($"in use by process {Environment.ProcessId} on {Environment.MachineName}", e.Message);
        }
        Assert.False(File.Exists(Path.Combine(run.Path, RunLock.FileName)));

        // A lock left by a process that has exited.
        using var gone = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        gone.WaitForExit();
        File.WriteAllText(Path.Combine(run.Path, RunLock.FileName), $"{gone.Id} {Environment.MachineName} {DateTime.UtcNow.Ticks}");
        using var taken = RunLock.Acquire(run.Path);
        Assert.Contains("stale", taken.TookOverFrom);

        string fresh = Path.Combine(run.Path, "fresh");
        RunLock.Acquire(fresh).Dispose(); // a run that failed before writing anything leaves no empty folder
        Assert.False(Directory.Exists(fresh));

        using var file = new TempFolder();
        var notAFolder = Assert.Throws<UserException>(() => RunLock.Acquire(file.Write("x", "")));
        Assert.Contains("is a file", notAFolder.Message);
    }

    [Fact]
    public void NonFiniteMetricsAreNullWithAFlag()
    {
        string line = MetricsLog.Line(new { type = "eval", step = 3, val_loss = double.NaN, val_ppl = double.PositiveInfinity, ok = 1.5 });
        Assert.Equal("{\"type\":\"eval\",\"step\":3,\"val_loss\":null,\"val_ppl\":null,\"ok\":1.5,\"non_finite\":[\"val_loss\",\"val_ppl\"]}", line);
        Assert.DoesNotContain("non_finite", MetricsLog.Line(new { type = "train", loss = 2.0 }));
    }

    [Fact]
    public void ResumeDropsTheMetricsLoggedAfterTheCheckpoint()
    {
        using var run = new TempFolder();
        File.WriteAllLines(Path.Combine(run.Path, MetricsLog.FileName),
            ["{\"type\":\"eval\",\"step\":0}", "{\"type\":\"train\",\"step\":1}", "{\"type\":\"train\",\"step\":2}", "{\"type\":\"train\",\"step\":3}",
             "{\"type\":\"train\",\"st"]); // torn by a crash
        Assert.Equal(2, MetricsLog.Reconcile(run.Path, 2)); // step 3 and the torn line
        Assert.Equal(3, File.ReadAllLines(Path.Combine(run.Path, MetricsLog.FileName)).Length);
        Assert.Equal(0, MetricsLog.Reconcile(run.Path, 2));
        var e = Assert.Throws<UserException>(() => MetricsLog.RequireFreshFolder(run.Path));
        Assert.Contains("metrics.jsonl", e.Message);
    }

    /// <summary>
    /// --lr 1e4 with a checkpoint after every step: the first update explodes the weights while its loss is still
    /// finite. The run must end non-finite with exit code 3, and leave either no checkpoint or one whose loss is finite.
    /// </summary>
    [Fact]
    public void AnExplodingRunKeepsOnlyACheckpointWhoseLossIsFinite()
    {
        using var cache = new TempFolder();
        using var run = new TempFolder();
        var device = TestDevice.Cpu;
        var data = DataSource.Open(RepoPaths.Sample, "bytes", cache.Path);
        using (var model = LanguageModel.Create(device, Small, seed: 3))
        using (var trainer = new Trainer(device, model, data, Quick(20) with { LearningRate = 1e4, WarmupFraction = 0 }, run.Path, TextWriter.Null))
        {
            var e = Assert.Throws<UserException>(() => trainer.Run());
            Assert.Equal(UserException.NonFiniteExitCode, e.ExitCode);
            Assert.Matches("The last good checkpoint is .* \\(step \\d+\\)|There is no good checkpoint", e.Message);
        }
        string dir = Checkpoint.PathIn(run.Path);
        if (!Directory.Exists(dir)) return;
        using var saved = LanguageModel.Create(device, Checkpoint.LoadConfig(dir), seed: 0);
        Checkpoint.LoadInto(dir, saved, optimizer: null);
        double loss = Evaluation.ValidationLoss(device, saved, data.Validation, 2, 16, 1);
        Assert.True(double.IsFinite(loss), $"the kept checkpoint gives {loss}");
    }
}
