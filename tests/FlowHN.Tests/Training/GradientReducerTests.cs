using FlowHN.Autograd;
using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Training;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Tests.Training;

/// <summary>
/// The backend choice of a data-parallel run and the device reducer's order of work, with a fake collective on
/// the CPU accelerator (NCCL itself needs a GPU).
/// </summary>
public class GradientReducerTests
{
    private static readonly NcclLoad Found = new(1, "/opt/nccl/libnccl.so.2", "2.21.5", null);
    private static readonly NcclLoad Missing = new(IntPtr.Zero, null, null, "no libnccl.so.2 on the library path");

    private static Func<NcclLoad> Never => () => throw new InvalidOperationException("NCCL must not be looked for here");

    [Fact]
    public void AutoTakesNcclOnCudaWhenItLoadsAndMpiOtherwise()
    {
        var cuda = ReducerChoice.Choose(DataParallelBackend.Auto, isCuda: true, () => Found);
        Assert.Equal(DataParallelBackend.Nccl, cuda.Backend);
        Assert.Same(Found, cuda.Nccl);
        Assert.Null(cuda.Warning);

        var cpu = ReducerChoice.Choose(DataParallelBackend.Auto, isCuda: false, Never); // the CPU never looks for NCCL
        Assert.Equal(DataParallelBackend.Mpi, cpu.Backend);
        Assert.Null(cpu.Warning);

        var fallback = ReducerChoice.Choose(DataParallelBackend.Auto, isCuda: true, () => Missing);
        Assert.Equal(DataParallelBackend.Mpi, fallback.Backend);
        Assert.StartsWith("warning: NCCL not found: no libnccl.so.2 on the library path.", fallback.Warning);
        Assert.Contains("--dp-backend mpi", fallback.Warning);
    }

    [Fact]
    public void AForcedBackendIsTakenOrSaysWhyItCannotBe()
    {
        Assert.Equal(DataParallelBackend.Mpi, ReducerChoice.Choose(DataParallelBackend.Mpi, isCuda: true, Never).Backend);
        Assert.Equal(DataParallelBackend.Mpi, ReducerChoice.Choose(DataParallelBackend.Mpi, isCuda: false, Never).Backend);
        Assert.Equal(DataParallelBackend.Nccl, ReducerChoice.Choose(DataParallelBackend.Nccl, isCuda: true, () => Found).Backend);

        var onCpu = Assert.Throws<UserException>(() => ReducerChoice.Choose(DataParallelBackend.Nccl, isCuda: false, Never));
        Assert.Contains("--dp-backend nccl needs --device cuda", onCpu.Message);
        var notFound = Assert.Throws<UserException>(() => ReducerChoice.Choose(DataParallelBackend.Nccl, isCuda: true, () => Missing));
        Assert.Contains("no libnccl.so.2 on the library path", notFound.Message);
        Assert.Contains("--dp-backend mpi", notFound.Message);
    }

    [Fact]
    public void BackendWordsParseOrNameTheChoices()
    {
        Assert.Equal(DataParallelBackend.Auto, ReducerChoice.Parse("auto"));
        Assert.Equal(DataParallelBackend.Nccl, ReducerChoice.Parse("nccl"));
        Assert.Equal(DataParallelBackend.Mpi, ReducerChoice.Parse("mpi"));
        Assert.Contains("use auto, nccl or mpi", Assert.Throws<UserException>(() => ReducerChoice.Parse("gloo")).Message);
    }

    [Theory]
    [InlineData(new[] { "--dp-backend", "gloo" }, "error: --dp-backend gloo is not a backend; use auto, nccl or mpi.")]
    [InlineData(new[] { "--collective-timeout", "-1" }, "error: --collective-timeout -1 is not a number of seconds; use a positive number, or 0 for no limit.")]
    [InlineData(new[] { "--dp-bucket-mib", "0" }, "error: --dp-bucket-mib 0 is not a size; use a positive number of MiB (e.g. 25).")]
    public void TheCommandLineRefusesBadDataParallelOptionsWithOneLine(string[] options, string message)
    {
        using var run = new TempFolder();
        var error = new StringWriter();
        int code = FlowHN.Cli.FlowHnCli.Run(["train", "--device", "cpu", "--data", "/no/data/needed/first", "--out", run.Path, .. options],
            TextWriter.Null, error);
        Assert.Equal(2, code);
        Assert.Equal(message, error.ToString().Trim());
    }

    [Fact]
    public void NcclWithoutMpiOnTheCpuSaysItNeedsCuda()
    {
        using var cache = new TempFolder();
        using var run = new TempFolder();
        var error = new StringWriter();
        int code = FlowHN.Cli.FlowHnCli.Run(["train", "--device", "cpu", "--preset", "tiny", "--data", RepoPaths.Sample, "--cache", cache.Path,
            "--out", run.Path, "--steps", "1", "--batch", "1", "--seq", "16", "--dp-backend", "nccl"], TextWriter.Null, error);
        Assert.Equal(2, code);
        Assert.StartsWith("error: --dp-backend nccl needs --device cuda", error.ToString().Trim());
    }

    /// <summary>
    /// Stands in for NCCL over two identical ranks: at the moment the collective runs it keeps what each bucket
    /// holds, then doubles it in place through the device pointer (the CPU accelerator's memory is host memory).
    /// </summary>
    private sealed unsafe class TwoIdenticalRanks : IDeviceCollective
    {
        public List<(IntPtr Data, long Count)> Ranges { get; } = new();
        public List<float[]> Seen { get; } = new();
        public List<bool> DuringBackward { get; } = new();
        public bool BackwardDone { get; set; }
        public int Calls { get; private set; }

        public void AllReduceSum(IReadOnlyList<(IntPtr Data, long Count)> ranges, DeviceStream stream)
        {
            Calls++;
            stream.Native.Synchronize(); // the fake runs on the host: the stream's earlier work must be done
            foreach (var (data, count) in ranges)
            {
                Ranges.Add((data, count));
                var values = new Span<float>((float*)data, (int)count);
                Seen.Add(values.ToArray());
                DuringBackward.Add(!BackwardDone);
                foreach (ref float v in values) v *= 2;
            }
        }

        public string Describe() => "fake";

        public void Dispose() { }
    }

    private static float[] Download(Session device, ArrayView<float> view)
    {
        var host = new float[view.Length];
        view.CopyToCPU(device.Runtime.CurrentStream.Native, host.AsSpan()); // pinned for the copy (see HostCopyTests)
        device.Runtime.CurrentStream.Synchronize();
        return host;
    }

    private sealed record StepResult(float[] Weights, float[] Gradients, IntPtr GradientBase, (long Offset, long Length)[] Buckets);

    private static readonly ModelConfig Small = new()
    {
        Arch = "transformer", VocabSize = 256, Dim = 16, Layers = 1, Heads = 2, KvHeads = 1, MlpHidden = 32,
    };

    /// <summary>One step of two micro-batches; the gradients as they are after the last backward.</summary>
    private static StepResult Step(IDeviceCollective? collective, int worldSize, long bucketBytes, bool overlap,
        string arch = "transformer", bool recompute = false)
    {
        var device = TestDevice.Cpu;
        int layers = arch switch { "shm" => 2, "jamba" => 5, _ => 2 }; // enough layers to hold an attention layer
        using var model = LanguageModel.Create(device, Small with { Arch = arch, Rope = arch == "transformer", Layers = layers }, seed: 3);
        model.Recompute = recompute;
        var store = model.Parameters().First().Store!;
        using var optimizer = new AdamW(device, model.Parameters().ToList());
        var tokens = Reference.RandomInts(2 * 17, 256, 7);
        var batch = new TokenBatch(tokens[..32], tokens[2..34], 2, 16);
        var step = new TrainingStep(device, model, optimizer, accumulation: 2);
        using var reducer = collective is null ? null : new NcclGradientReducer(device, store, collective, worldSize, overlap, bucketBytes);
        step.Reducer = reducer;
        float[]? gradients = null;
        step.Observer = new AfterBackward(micro =>
        {
            if (micro == 1) gradients = Download(device, store.Gradients);
            if (micro == 1 && collective is TwoIdenticalRanks fake) fake.BackwardDone = true;
        });
        step.Run(() => batch, 1e-3);
        return new StepResult(Download(device, store.Weights), gradients!, store.Gradients.LoadEffectiveAddressAsPtr(),
            reducer?.Buckets.ToArray() ?? []);
    }

    private sealed class AfterBackward(Action<int> action) : IStepObserver
    {
        public void BackwardDone(int microBatch) => action(microBatch);
    }

    [Fact]
    public void TheDeviceReducerSumsEveryBucketInOneGroupAfterTheLastBackwardWithoutOverlap()
    {
        const long bucketBytes = 1 << 10;
        var single = Step(null, worldSize: 1, bucketBytes, overlap: false);
        var fake = new TwoIdenticalRanks();
        var reduced = Step(fake, worldSize: 2, bucketBytes, overlap: false);
        var buckets = reduced.Buckets;

        // One collective call per step, all buckets in it, in the plan's order, at the buckets' addresses.
        Assert.Equal(1, fake.Calls);
        Assert.True(buckets.Length > 1, "the test needs several buckets");
        Assert.Equal(buckets.Length, fake.Ranges.Count);
        Assert.DoesNotContain(true, fake.DuringBackward);
        for (int b = 0; b < buckets.Length; b++)
        {
            Assert.Equal(buckets[b].Length, fake.Ranges[b].Count);
            Assert.Equal(reduced.GradientBase + (nint)(buckets[b].Offset * sizeof(float)), fake.Ranges[b].Data);
        }
        // Each rank's loss is scaled by 1/2: the gradients the collective saw are the final ones of both micro-batches
        // (power-of-two scaling is exact), and after the doubling the update is the single process's, bit for bit.
        for (int b = 0; b < buckets.Length; b++)
            for (int i = 0; i < buckets[b].Length; i++)
            {
                long at = buckets[b].Offset + i;
                Assert.Equal(reduced.Gradients[at], fake.Seen[b][i]);
                Assert.Equal(single.Gradients[at] / 2, fake.Seen[b][i]);
            }
        Assert.Equal(single.Weights, reduced.Weights);
    }

    /// <summary>
    /// With overlap each bucket's collective starts during the last backward, once per step, and what it sums is
    /// already the bucket's final gradient (the values after the whole backward): the hook fires only after every
    /// backward that writes the bucket has run, also through recomputed layers and parallel branches.
    /// </summary>
    [Theory]
    [InlineData("transformer", false)]
    [InlineData("transformer", true)]
    [InlineData("mamba", false)]
    [InlineData("mamba2", false)]
    [InlineData("flowhn", false)]
    [InlineData("flowhn", true)]
    [InlineData("shm", false)]
    [InlineData("jamba", true)]
    [InlineData("hymba", false)]
    public void WithOverlapEachBucketIsSummedOnceDuringTheBackwardWhenItsGradientsAreFinal(string arch, bool recompute)
    {
        const long bucketBytes = 1 << 10;
        var single = Step(null, worldSize: 1, bucketBytes, overlap: false, arch, recompute);
        var fake = new TwoIdenticalRanks();
        var reduced = Step(fake, worldSize: 2, bucketBytes, overlap: true, arch, recompute);
        var buckets = reduced.Buckets;
        Assert.True(buckets.Length > 4, "the test needs several buckets");

        // Every bucket once, one per call; most before the backward ended (the first-used parameters, the embedding,
        // are final only at its very end).
        Assert.Equal(buckets.Length, fake.Calls);
        var byAddress = buckets.Select((b, index) => (Address: reduced.GradientBase + (nint)(b.Offset * sizeof(float)), index))
            .ToDictionary(x => x.Address, x => x.index);
        var order = fake.Ranges.Select(r => byAddress[r.Data]).ToList();
        Assert.Equal(buckets.Length, order.Distinct().Count());
        int early = fake.DuringBackward.Count(d => d);
        Assert.True(early >= buckets.Length / 2, $"only {early} of {buckets.Length} buckets started during the backward");
        for (int call = 0; call < fake.Calls; call++)
        {
            var (offset, length) = buckets[order[call]];
            Assert.Equal(length, fake.Ranges[call].Count);
            // The single process's final gradients, halved (each rank's loss is scaled by 1/2; exact in floats).
            for (int i = 0; i < length; i++)
                Assert.True(single.Gradients[offset + i] / 2 == fake.Seen[call][i],
                    $"bucket {order[call]} (call {call}) element {i}: {fake.Seen[call][i]} at the hook, {single.Gradients[offset + i] / 2} final");
        }
        // The same sums as without overlap: the update is the single process's, bit for bit.
        Assert.Equal(single.Weights, reduced.Weights);
    }
}
