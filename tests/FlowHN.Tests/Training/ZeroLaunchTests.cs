using System.Text.RegularExpressions;
using FlowHN.Training;
using static FlowHN.Tests.Training.MpiLaunch;

namespace FlowHN.Tests.Training;

/// <summary>
/// ZeRO-1 (<c>--zero 1</c>) through the real <c>flowhn train</c> under <c>mpirun -np 2</c> on the CPU accelerator:
/// the same losses as the plain two-rank run, half the optimizer memory per rank, exact resumes, and checkpoints
/// that plain runs resume.
/// </summary>
public class ZeroLaunchTests
{
    private static Result TwoRanks(string[] args) => Run(MpiFactAttribute.Mpirun!, Mpi(2, args));

    /// <summary>The device bytes of optimizer state rank 0 reported (the allocator's count around the optimizer's allocation).</summary>
    private static long OptimizerBytes(string output) =>
        long.Parse(Regex.Match(output, @"optimizer state: ([\d,]+) bytes").Groups[1].Value.Replace(",", ""));

    private static void AssertClose(List<(int Step, double Loss, double GradNorm)> expected, List<(int Step, double Loss, double GradNorm)> actual)
    {
        Assert.Equal(expected.Select(e => e.Step), actual.Select(a => a.Step));
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.True(Math.Abs(expected[i].Loss - actual[i].Loss) <= 1e-6 * expected[i].Loss,
                $"step {expected[i].Step}: loss {expected[i].Loss} vs {actual[i].Loss}");
            // The global norm is summed in float by the device reduction: over each rank's shard and then across
            // the ranks with ZeRO, over the whole buffer without; the grouping alone moves it by about 2e-4.
            Assert.True(Math.Abs(expected[i].GradNorm - actual[i].GradNorm) <= 1e-3 * expected[i].GradNorm,
                $"step {expected[i].Step}: gradient norm {expected[i].GradNorm} vs {actual[i].GradNorm}");
        }
    }

    [MpiFact]
    public void ShardedMomentsGiveTheSameLossesWithHalfTheOptimizerMemory()
    {
        using var tmp = new TempFolder();
        // Against the plain 2-rank run only: the data-parallel tests already hold 2 ranks to one process.
        string plain = tmp.File("plain"), zero = tmp.File("zero"), cache = tmp.File("cache");
        var two = TwoRanks(Train(plain, cache, batch: 2, "--steps", "3"));
        Assert.True(two.ExitCode == 0, two.Output);
        var sharded = TwoRanks(Train(zero, cache, batch: 2, "--steps", "3", "--zero", "1"));
        Assert.True(sharded.ExitCode == 0, sharded.Output);
        Assert.Contains("gradients: ZeRO-1 over MPI", sharded.Output);

        AssertClose(TrainLines(plain), TrainLines(zero));
        // Rank 0's moments cover half the parameters: its optimizer allocation halves, up to the norm's two small tensors.
        long plainBytes = OptimizerBytes(two.Output), zeroBytes = OptimizerBytes(sharded.Output);
        Assert.True(2 * zeroBytes <= plainBytes + 1024 && 2 * zeroBytes >= plainBytes - 1024, $"optimizer bytes: {zeroBytes} with ZeRO-1, {plainBytes} without");
        Assert.True(plainBytes > 1 << 20, $"the plain run's moments: {plainBytes} bytes");
    }

    [MpiFact]
    public void WithoutClippingTheShardedRunIsThePlainRunBitForBit()
    {
        using var tmp = new TempFolder();
        string plain = tmp.File("plain"), zero = tmp.File("zero"), cache = tmp.File("cache");
        // The reduce-scatter gives each shard the all-reduce's sums and the update is elementwise: only the clip
        // factor (from a norm summed in another grouping) can differ, so without clipping every bit is the same.
        string[] common = ["--steps", "3", "--grad-clip", "0"];
        var two = TwoRanks(Train(plain, cache, batch: 2, common));
        Assert.True(two.ExitCode == 0, two.Output);
        var sharded = TwoRanks(Train(zero, cache, batch: 2, [.. common, "--zero", "1"]));
        Assert.True(sharded.ExitCode == 0, sharded.Output);
        Assert.Equal(TrainLines(plain).Select(l => l.Loss), TrainLines(zero).Select(l => l.Loss));
        foreach (var file in new[] { "model.safetensors", "optimizer.safetensors" })
        {
            using var expected = FlowHN.Training.SafetensorsFile.Open(Path.Combine(plain, "checkpoint", file));
            using var actual = FlowHN.Training.SafetensorsFile.Open(Path.Combine(zero, "checkpoint", file));
            Assert.Equal(expected.Names.Order(), actual.Names.Order());
            foreach (var n in expected.Names) Assert.True(expected.ReadArray(n).SequenceEqual(actual.ReadArray(n)), $"{file}: {n} differs");
        }
    }

    [MpiFact]
    public void ShardedRunsResumeExactlyAndTheirCheckpointsResumePlainRuns()
    {
        using var tmp = new TempFolder();
        string whole = tmp.File("whole"), halves = tmp.File("halves"), copy = tmp.File("copy"), cache = tmp.File("cache");
        string[] common = ["--steps", "4", "--accum", "2", "--zero", "1"];
        var uninterrupted = TwoRanks(Train(whole, cache, batch: 1, common));
        Assert.True(uninterrupted.ExitCode == 0, uninterrupted.Output);
        var first = TwoRanks(Train(halves, cache, batch: 1, [.. common, "--stop-after", "2"]));
        Assert.True(first.ExitCode == 0, first.Output);
        CopyFolder(halves, copy);

        // The checkpoint is the single-process format: every moment whole, named as a plain run names it.
        using (var moments = FlowHN.Training.SafetensorsFile.Open(Path.Combine(halves, "checkpoint", "optimizer.safetensors")))
        using (var weights = FlowHN.Training.SafetensorsFile.Open(Path.Combine(halves, "checkpoint", "model.safetensors")))
        {
            Assert.Equal(weights.Names.SelectMany(n => new[] { "exp_avg." + n, "exp_avg_sq." + n }).Order(), moments.Names.Order());
            foreach (var n in weights.Names)
            {
                Assert.Equal(weights.Shape(n), moments.Shape("exp_avg_sq." + n));
                Assert.Contains(moments.ReadArray("exp_avg_sq." + n), x => x > 0); // both ranks' shards arrived
            }
        }

        var rest = TwoRanks(["train", "--resume", "--out", halves, "--device", "cpu", "--cache", cache, "--zero", "1"]);
        Assert.True(rest.ExitCode == 0, rest.Output);
        Assert.Contains("resumed from", rest.Output);
        Assert.Equal(TrainLines(whole), TrainLines(halves)); // the same reductions on both sides: bit for bit

        var plainRest = TwoRanks(["train", "--resume", "--out", copy, "--device", "cpu", "--cache", cache]);
        Assert.True(plainRest.ExitCode == 0, plainRest.Output);
        Assert.DoesNotContain("ZeRO-1", plainRest.Output);
        AssertClose(TrainLines(whole), TrainLines(copy));
    }

    [Fact]
    public void ZeroWithoutMpiIsAnErrorLine()
    {
        using var tmp = new TempFolder();
        var result = Run(Executable, Train(tmp.File("run"), tmp.File("cache"), batch: 1, "--steps", "1", "--zero", "1"));
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("error: --zero 1 shards the AdamW moments over the ranks of a data-parallel run: launch it with mpirun", result.Output);
        Assert.DoesNotContain("   at ", result.Output);
    }

    [Fact]
    public void ShardsAreBalancedAndCoverTheBufferInRankOrder()
    {
        foreach (var (total, ranks) in new[] { (10L, 3), (853_120L, 2), (5L, 5), (7L, 1) })
        {
            long next = 0;
            for (int r = 0; r < ranks; r++)
            {
                var s = ParameterShard.Balanced(total, ranks, r);
                Assert.Equal(next, s.Offset);
                Assert.InRange(s.Length, total / ranks, total / ranks + 1);
                next += s.Length;
            }
            Assert.Equal(total, next);
            var (counts, displacements) = ParameterShard.Balanced(total, ranks, 0).Layout();
            Assert.Equal(total, counts.Sum(c => (long)c));
            Assert.Equal(Enumerable.Range(0, ranks).Select(r => (int)ParameterShard.Balanced(total, ranks, r).Offset), displacements);
        }
        var shard = ParameterShard.Balanced(10, 3, 1); // [4, 7)
        Assert.Equal((4L, 7L - 4L), (shard.Offset, shard.Length));
        Assert.Equal((0L, 2L), shard.Overlap(2, 4));  // [2, 6) ∩ [4, 7) = [4, 6)
        Assert.Equal((2L, 1L), shard.Overlap(6, 10)); // [6, 16) ∩ [4, 7) = [6, 7)
        Assert.Equal((0L, 0L), shard.Overlap(7, 3));
    }

    private static void CopyFolder(string from, string to)
    {
        foreach (var dir in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(dir.Replace(from, to));
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
            File.Copy(file, file.Replace(from, to));
    }
}
