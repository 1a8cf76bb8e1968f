using System.Diagnostics;
using FlowHN.Runtime;
using static FlowHN.Tests.Training.MpiLaunch;

namespace FlowHN.Tests.Training;

/// <summary>A test that needs Open MPI's mpirun; skipped, saying how to install it, where there is none.</summary>
public sealed class MpiFactAttribute : FactAttribute
{
    public static readonly string? Mpirun = new[] { "/usr/bin/mpirun", "/usr/local/bin/mpirun" }.FirstOrDefault(File.Exists)
        ?? (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "mpirun")).FirstOrDefault(File.Exists);

    public MpiFactAttribute()
    {
        if (Mpirun is null) Skip = "mpirun not found: install Open MPI (apt-get install openmpi-bin libopenmpi-dev) to run the data-parallel tests";
    }
}

/// <summary>
/// The real `flowhn train` under `mpirun -np 2` on the CPU accelerator against one process: the same losses at
/// the same global batch, an exact resume, and a killed rank ending the job.
/// </summary>
public class DataParallelLaunchTests
{
    [MpiFact]
    public void TwoRanksMatchOneProcessWithTwiceTheBatch()
    {
        using var tmp = new TempFolder();
        string single = tmp.File("single"), parallel = tmp.File("parallel"), cache = tmp.File("cache");
        var one = Run(Executable, Train(single, cache, batch: 4, "--steps", "3"));
        Assert.True(one.ExitCode == 0, one.Output);
        var two = Run(MpiFactAttribute.Mpirun!, Mpi(2, Train(parallel, cache, batch: 2, "--steps", "3")));
        Assert.True(two.ExitCode == 0, two.Output);
        Assert.Contains("data parallel: 2 ranks x batch 2 x accum 1 = 4 sequences per step", two.Output);

        var expected = TrainLines(single);
        var actual = TrainLines(parallel); // rank 0 alone writes metrics.jsonl: one line per step
        Assert.Equal(expected.Select(e => e.Step), actual.Select(a => a.Step));
        for (int i = 0; i < expected.Count; i++)
        {
            // Each rank's half of the batch is summed in another order than one process sums the whole batch, and the
            // losses are float32 means: equal within 1e-6 relative (about two float ulps at a loss of 5.6).
            Assert.True(Math.Abs(expected[i].Loss - actual[i].Loss) <= 1e-6 * expected[i].Loss,
                $"step {expected[i].Step}: {expected[i].Loss} vs {actual[i].Loss}");
            Assert.True(Math.Abs(expected[i].GradNorm - actual[i].GradNorm) <= 1e-5 * expected[i].GradNorm,
                $"step {expected[i].Step}: gradient norm {expected[i].GradNorm} vs {actual[i].GradNorm}");
        }
        Assert.True(File.Exists(Path.Combine(parallel, "checkpoint", "model.safetensors")), "rank 0 saved no checkpoint");
    }

    [MpiFact]
    public void TwoRanksResumeExactly()
    {
        using var tmp = new TempFolder();
        string whole = tmp.File("whole"), halves = tmp.File("halves"), cache = tmp.File("cache");
        var uninterrupted = Run(MpiFactAttribute.Mpirun!, Mpi(2, Train(whole, cache, batch: 1, "--steps", "4", "--accum", "2")));
        Assert.True(uninterrupted.ExitCode == 0, uninterrupted.Output);
        var first = Run(MpiFactAttribute.Mpirun!, Mpi(2, Train(halves, cache, batch: 1, "--steps", "4", "--accum", "2", "--stop-after", "2")));
        Assert.True(first.ExitCode == 0, first.Output);
        var rest = Run(MpiFactAttribute.Mpirun!, Mpi(2, ["train", "--resume", "--out", halves, "--device", "cpu", "--cache", cache]));
        Assert.True(rest.ExitCode == 0, rest.Output);
        Assert.Contains("resumed from", rest.Output);
        // The same reduction order on both sides: bit for bit.
        Assert.Equal(TrainLines(whole), TrainLines(halves));
    }

    [MpiFact]
    public void OverlappingTheAllReduceWithTheBackwardChangesNoBit()
    {
        using var tmp = new TempFolder();
        string overlapped = tmp.File("overlapped"), after = tmp.File("after"), cache = tmp.File("cache");
        // 16 KiB buckets: the tiny model's gradients in many all-reduces, most started during the backward.
        string[] common = ["--steps", "3", "--accum", "2", "--dp-bucket-mib", "0.015625"];
        var first = Run(MpiFactAttribute.Mpirun!, Mpi(2, Train(overlapped, cache, batch: 1, common)));
        Assert.True(first.ExitCode == 0, first.Output);
        Assert.Contains("overlapped with the backward", first.Output);
        var second = Run(MpiFactAttribute.Mpirun!, Mpi(2, Train(after, cache, batch: 1, [.. common, "--no-dp-overlap"])));
        Assert.True(second.ExitCode == 0, second.Output);
        Assert.Contains("after the backward", second.Output);
        Assert.Equal(TrainLines(after), TrainLines(overlapped));
    }

    [MpiFact]
    public void AKilledRankEndsTheJobWithAMessage()
    {
        using var tmp = new TempFolder();
        var result = Run(MpiFactAttribute.Mpirun!, Mpi(2, Train(tmp.File("run"), tmp.File("cache"), batch: 1, "--steps", "100000")), 300,
            (mpirun, output) =>
            {
                var clock = Stopwatch.StartNew();
                while (true)
                {
                    lock (output)
                        if (output.ToString().Contains("step     2/")) break;
                    Assert.False(mpirun.HasExited, $"mpirun exited before step 2: {output}");
                    Assert.True(clock.Elapsed.TotalSeconds < 240, $"no step 2 after 240 s: {output}");
                    Thread.Sleep(50);
                }
                int rank1 = RankProcess(mpirun.Id, 1);
                Process.GetProcessById(rank1).Kill();
                clock.Restart();
                Assert.True(mpirun.WaitForExit(60_000), $"the job still runs 60 s after rank 1 was killed: {output}");
            });
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("rank 1", result.Output);
        Assert.Contains("exited on signal 9", result.Output);
    }

    [MpiFact]
    public void ARankThatFailsEndsEveryRankWithItsMessage()
    {
        using var tmp = new TempFolder();
        var args = Train(tmp.File("run"), tmp.File("cache"), batch: 1, "--steps", "100");
        // Two app contexts: rank 1 alone gets a NaN loss at step 2 and stops; rank 0 would wait for it in the next step.
        var result = Run(MpiFactAttribute.Mpirun!,
            ["--allow-run-as-root", "--oversubscribe", "-np", "1", Executable, .. args, ":", "-np", "1", "env", "FLOWHN_FAULT=nan:step-2", Executable, .. args],
            300);
        Assert.Equal(UserException.NonFiniteExitCode, result.ExitCode);
        Assert.Contains("error: The loss became NaN at step 2", result.Output);
        Assert.Contains("error: rank 1 of 2 failed; ending every rank of the job", result.Output);
        Assert.DoesNotContain("step     3/", result.Output);
    }

    [MpiFact]
    public void AHungRankEndsTheJobAfterTheCollectiveTimeout()
    {
        using var tmp = new TempFolder();
        // The timeout also covers the collectives of start-up, where the ranks may drift apart by seconds on a busy machine.
        var args = Train(tmp.File("run"), tmp.File("cache"), batch: 1, "--steps", "100", "--collective-timeout", "15");
        // Rank 1 stays alive but stops before step 2; rank 0 waits for it in step 2's gradient all-reduce.
        var result = Run(MpiFactAttribute.Mpirun!,
            ["--allow-run-as-root", "--oversubscribe", "-np", "1", Executable, .. args, ":", "-np", "1", "env", "FLOWHN_FAULT=hang:step-2", Executable, .. args],
            300);
        Assert.Equal(ProcessGroup.CollectiveTimeoutExitCode, result.ExitCode);
        Assert.Contains("error: MPI_Iallreduce (gradient all-reduce) on rank 0 of 2 did not complete within 15 s", result.Output);
        Assert.Contains("error: rank 0 of 2 failed; ending every rank of the job", result.Output);
        Assert.Contains("step     1/", result.Output);
        Assert.DoesNotContain("step     2/", result.Output);
    }

    /// <summary>The child of mpirun that runs <paramref name="rank"/> (from its OMPI_COMM_WORLD_RANK).</summary>
    private static int RankProcess(int mpirun, int rank)
    {
        var children = Directory.GetDirectories($"/proc/{mpirun}/task")
            .SelectMany(task => File.ReadAllText(Path.Combine(task, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries)).Select(int.Parse);
        foreach (int child in children)
        {
            var environment = File.ReadAllText($"/proc/{child}/environ").Split('\0');
            if (environment.Contains($"OMPI_COMM_WORLD_RANK={rank}")) return child;
        }
        throw new InvalidOperationException($"no child of mpirun {mpirun} runs rank {rank}");
    }
}
