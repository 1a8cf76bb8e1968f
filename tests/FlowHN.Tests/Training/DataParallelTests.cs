using FlowHN.Autograd;
using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Training;

namespace FlowHN.Tests.Training;

/// <summary>The parts of data parallelism that need no MPI: launch detection, gradient buckets, batch slices.</summary>
public class DataParallelTests
{
    private static Func<string, string?> Environment(params (string Name, string Value)[] variables) =>
        name => variables.FirstOrDefault(v => v.Name == name).Value;

    [Fact]
    public void LaunchesAreDetectedFromTheLaunchersVariables()
    {
        Assert.Null(ProcessGroup.Detect(Environment()));
        Assert.Null(ProcessGroup.Detect(Environment(("OMPI_COMM_WORLD_RANK", "1")))); // no size: not a launch
        Assert.Equal(new LaunchInfo(3, 8, 1, "Open MPI"), ProcessGroup.Detect(Environment(
            ("OMPI_COMM_WORLD_SIZE", "8"), ("OMPI_COMM_WORLD_RANK", "3"), ("OMPI_COMM_WORLD_LOCAL_RANK", "1"))));
        Assert.Equal(new LaunchInfo(5, 16, 1, "PMI"), ProcessGroup.Detect(Environment(
            ("PMI_SIZE", "16"), ("PMI_RANK", "5"), ("SLURM_LOCALID", "1"))));
        // Without a local rank the rank is used (one machine).
        Assert.Equal(new LaunchInfo(2, 4, 2, "PMI"), ProcessGroup.Detect(Environment(("PMI_SIZE", "4"), ("PMI_RANK", "2"))));
    }

    [Fact]
    public void APlainProcessOpensNoGroupAndLoadsNoMpiLibrary()
    {
        if (ProcessGroup.Detect(System.Environment.GetEnvironmentVariable) is not null) return; // the tests themselves run under mpirun
        Assert.Null(ProcessGroup.FromEnvironment());
        Assert.DoesNotContain(File.ReadLines("/proc/self/maps"), line => line.Contains("libmpi"));
    }

    [Theory]
    [InlineData(1024)]
    [InlineData(16 << 10)]
    [InlineData(1 << 20)]
    [InlineData(GradientBuckets.DefaultBytes)]
    public void BucketsCoverTheGradientsBackToFrontOnParameterBoundaries(long bucketBytes)
    {
        using var model = LanguageModel.Create(TestDevice.Cpu, ArchitectureRegistry.Get("transformer").Config("tiny", 256), seed: 1);
        var store = model.Parameters().First().Store!;
        var layout = new ParameterLayout(store.Parameters, store.Offsets, store.DecayLength, store.Length);
        var buckets = GradientBuckets.Plan(layout, bucketBytes);
        var starts = store.Offsets.Values.ToHashSet();
        long end = store.Length;
        foreach (var (offset, length) in buckets)
        {
            Assert.Equal(end, offset + length); // contiguous, from the end of the buffer backwards
            Assert.Contains(offset, starts);
            // Within the size, unless the bucket is one parameter larger than a bucket.
            bool single = store.Offsets.Values.Count(o => o >= offset && o < offset + length) == 1;
            Assert.True(length * sizeof(float) <= bucketBytes || single, $"bucket at {offset} holds {length} floats");
            end = offset;
        }
        Assert.Equal(0, end);
        if (bucketBytes == GradientBuckets.DefaultBytes) Assert.Single(buckets); // the tiny model fits one bucket
        else Assert.True(buckets.Count > 1);
    }

    [Fact]
    public void RankSlicesAreDisjointAndTogetherAreOneProcesssGlobalBatch()
    {
        var tokens = Enumerable.Range(0, 5000).Select(i => i % 251).ToArray();
        var whole = new TokenLoader(tokens, 7);
        var ranks = Enumerable.Range(0, 3).Select(_ => new TokenLoader(tokens, 7)).ToArray();
        for (int step = 0; step < 4; step++)
        {
            var global = whole.NextBatch(3 * 2, 8);
            var slices = ranks.Select((loader, rank) => loader.NextBatch(2, 8, rank, 3)).ToArray();
            Assert.Equal(global.Inputs, slices.SelectMany(s => s.Inputs));
            Assert.Equal(global.Targets, slices.SelectMany(s => s.Targets));
            Assert.All(slices, s => Assert.Equal(2, s.BatchSize));
            Assert.All(ranks, r => Assert.Equal(whole.State, r.State)); // every rank at the same position: one checkpoint resumes all
        }
    }
}
