using FlowHN.Nn;
using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Tensors;
using FlowHN.Training;

namespace FlowHN.Tests.Training;

public class TrainingTests
{
    private static readonly ModelConfig Small = new()
    {
        Arch = "transformer", VocabSize = 256, Dim = 16, Layers = 1, Heads = 2, KvHeads = 1, MlpHidden = 32,
    };

    private static DataSource SampleBytes(TempFolder cache) => DataSource.Open(RepoPaths.Sample, "bytes", cache.Path);

    private static TrainOptions QuickOptions(int steps) => new()
    {
        Steps = steps, Batch = 2, SeqLen = 16, LearningRate = 3e-3, EvalEvery = 1000, EvalBatches = 1, CheckpointEvery = 2, LogEvery = 1000,
    };

    [Theory]
    [InlineData("transformer")]
    [InlineData("mamba")]
    [InlineData("mamba2")]
    [InlineData("flowhn")]
    [InlineData("shm")]
    [InlineData("jamba")]
    [InlineData("hymba")]
    public void ATinyModelOverfitsAFixedBatch(string arch)
    {
        var device = TestDevice.Cpu;
        int layers = arch switch { "shm" => 2, "jamba" => 5, _ => 1 }; // enough layers to hold an attention layer
        using var model = LanguageModel.Create(device, Small with { Arch = arch, Rope = arch == "transformer", Layers = layers }, seed: 4);
        using var optimizer = new AdamW(device, model.Parameters().ToList(), weightDecay: 0);
        var tokens = Reference.RandomInts(2 * 17, 256, 5);
        var inputs = Enumerable.Range(0, 2).SelectMany(r => tokens[(r * 17)..(r * 17 + 16)]).ToArray();
        var targets = Enumerable.Range(0, 2).SelectMany(r => tokens[(r * 17 + 1)..(r * 17 + 17)]).ToArray();
        var batch = new TokenBatch(inputs, targets, 2, 16);
        var step = new TrainingStep(device, model, optimizer);
        using var log = new DeviceStepLog(device, 1);
        step.Run(() => batch, 1e-2, log);
        float first = log.Read()[0].Loss;
        for (int i = 1; i < 150; i++) step.Run(() => batch, 1e-2, log: i == 149 ? log : null);
        float last = log.Read()[0].Loss;
        Assert.True(last < 0.1 * first, $"loss went from {first} to {last}");
    }

    [Fact]
    public void ResumingContinuesExactlyLikeAnUninterruptedRun()
    {
        using var cache = new TempFolder();
        using var runA = new TempFolder();
        using var runB = new TempFolder();
        var data = SampleBytes(cache);
        var device = TestDevice.Cpu;

        IReadOnlyList<double> Train(string dir, bool resume, int? stopAfter)
        {
            using var model = LanguageModel.Create(device, Small, seed: 6); // packed parameters, flat optimizer state
            using var trainer = new Trainer(device, model, data, QuickOptions(6), dir, TextWriter.Null);
            if (resume) trainer.Resume();
            return trainer.Run(stopAfter).StepLosses;
        }

        var uninterrupted = Train(runA.Path, resume: false, stopAfter: null);
        var firstHalf = Train(runB.Path, resume: false, stopAfter: 4); // as if the process died after step 4's checkpoint
        var secondHalf = Train(runB.Path, resume: true, stopAfter: null);
        Assert.Equal(uninterrupted.Take(4), firstHalf);
        Assert.Equal(uninterrupted.Skip(4), secondHalf);
        Assert.Equal(6, File.ReadLines(Path.Combine(runB.Path, "metrics.jsonl")).Count(l => l.Contains("\"train\"")));
    }

    [Fact]
    public void ANonFiniteLossStopsWithTheStepAndKeepsTheLastGoodCheckpoint()
    {
        using var cache = new TempFolder();
        using var run = new TempFolder();
        var data = SampleBytes(cache);
        var device = TestDevice.Cpu;
        using (var model = new SequentialLM(device, Small, seed: 7).Allocated())
        using (var trainer = new Trainer(device, model, data, QuickOptions(2), run.Path, TextWriter.Null))
            trainer.Run();

        using var poisoned = new SequentialLM(device, Small, seed: 7).Allocated();
        using var resumed = new Trainer(device, poisoned, data, QuickOptions(4), run.Path, TextWriter.Null);
        resumed.Resume();
        var weight = poisoned.Parameters().First();
        weight.CopyFrom(Enumerable.Repeat(float.NaN, (int)weight.Length).ToArray());
        var e = Assert.Throws<UserException>(() => resumed.Run());
        Assert.Contains("step 3", e.Message);
        Assert.Equal(2, Checkpoint.LoadState(Checkpoint.PathIn(run.Path)).Step);
    }

    [Fact]
    public void ScheduleWarmsUpThenDecaysToTheFloor()
    {
        var s = new LearningRateSchedule(1.0, 100, 0.1, 0.1);
        Assert.Equal(0.1, s.At(1), 9);
        Assert.Equal(1.0, s.At(10), 9);
        Assert.True(s.At(50) < 1.0 && s.At(50) > 0.1);
        Assert.Equal(0.1, s.At(100), 9);
    }

    [Fact]
    public void SafetensorsRoundTripAndRejectGarbage()
    {
        using var dir = new TempFolder();
        string path = dir.File("t.safetensors");
        Safetensors.Write(path, [new Safetensors.Entry("a.weight", [2, 3], [1, 2, 3, 4, 5, 6]), new Safetensors.Entry("b", [1], [7])]);
        var read = Safetensors.Read(path);
        Assert.Equal([2, 3], read["a.weight"].Shape);
        Assert.Equal([1f, 2, 3, 4, 5, 6], read["a.weight"].Data);
        Assert.Equal(0, (new FileInfo(path).Length - 8 - 6 * 4 - 4) % 8); // header padded to 8 bytes
        File.WriteAllBytes(path, [1, 2, 3]);
        var e = Assert.Throws<UserException>(() => Safetensors.Read(path));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void AStopRequestFinishesTheStepAndSavesACheckpoint()
    {
        using var cache = new TempFolder();
        using var run = new TempFolder();
        var device = TestDevice.Cpu;
        using var model = new SequentialLM(device, Small, seed: 8).Allocated();
        using var trainer = new Trainer(device, model, SampleBytes(cache), QuickOptions(50), run.Path, TextWriter.Null);
        trainer.RequestStop();
        var result = trainer.Run();
        Assert.True(trainer.Interrupted);
        Assert.Single(result.StepLosses);
        Assert.Equal(1, Checkpoint.LoadState(Checkpoint.PathIn(run.Path)).Step);
    }

    [Fact]
    public void SamplingIsGreedyAtZeroTemperatureAndRespectsTopK()
    {
        float[] logits = [0.1f, 2.5f, -1f, 2.4f];
        var random = new Random(1);
        Assert.Equal(1, new FlowHN.Inference.SamplingOptions(0, 0).Sample(logits, random));
        Assert.Equal(1, new FlowHN.Inference.SamplingOptions(1.0, 1).Sample(logits, random));
        var drawn = Enumerable.Range(0, 200).Select(_ => new FlowHN.Inference.SamplingOptions(1.0, 2).Sample(logits, random)).ToHashSet();
        Assert.Equal([1, 3], drawn.Order());
    }

    [Theory]
    [InlineData("transformer")]
    [InlineData("flowhn")]
    public void AccumulatingMicroBatchesTrainsLikeOneBigBatch(string arch)
    {
        using var cache = new TempFolder();
        var data = SampleBytes(cache);
        var device = TestDevice.Cpu;
        (IReadOnlyList<double> Losses, float GradNorm, long PeakBytes) Train(int batch, int accumulation)
        {
            using var run = new TempFolder();
            using var model = LanguageModel.Create(device, Small with { Arch = arch }, seed: 9);
            var options = QuickOptions(3) with { Batch = batch, Accumulation = accumulation };
            using var trainer = new Trainer(device, model, data, options, run.Path, TextWriter.Null);
            device.Runtime.Allocator.ResetPeak();
            var losses = trainer.Run().StepLosses;
            return (losses, trainer.Optimizer.LastGradNorm(), device.Runtime.Allocator.PeakRequestedBytes);
        }
        var whole = Train(batch: 4, accumulation: 1);
        var split = Train(batch: 2, accumulation: 2);
        for (int i = 0; i < whole.Losses.Count; i++) Assert.Equal(whole.Losses[i], split.Losses[i], 4);
        // AdamW would hide a gradient of the wrong scale; its norm does not.
        Assert.Equal(whole.GradNorm, split.GradNorm, 4);
        // A micro-batch's memory goes back before the next one starts (only the scaled loss is extra: a few bytes).
        Assert.InRange(split.PeakBytes - Train(batch: 2, accumulation: 1).PeakBytes, 0, 64);
    }

    [Fact]
    public void ParametersArePlannedThenAllocatedOnceAtTheirExactSize()
    {
        var device = TestDevice.Cpu;
        var allocator = device.Runtime.Allocator;
        allocator.ReleaseCached(); // other tests leave cached blocks; from here reserved = in use
        long inUseBefore = allocator.BytesInUse, driverBefore = allocator.DriverAllocations, freesBefore = allocator.Frees;
        using var model = new SequentialLM(device, Small, seed: 10);
        Assert.Equal(inUseBefore, allocator.BytesInUse); // planned: no device memory yet
        Assert.Throws<InvalidOperationException>(() => model.Parameters().First().View);
        model.AllocateParameters();
        var store = model.Store!;
        using var optimizer = new AdamW(device, model.Parameters().ToList());
        // Weights, gradients, both moments and AdamW's two scalars: six driver allocations, nothing freed or cached.
        Assert.Equal(driverBefore + 6, allocator.DriverAllocations);
        Assert.Equal(freesBefore, allocator.Frees);
        Assert.Equal(allocator.BytesReserved, allocator.BytesInUse);
        Assert.Equal(store.Bytes + optimizer.MomentBytes + 2 * 64 * sizeof(float), allocator.BytesInUse - inUseBefore); // + [1] and [2]
        Assert.Equal(4L * store.Length * sizeof(float), store.Bytes + optimizer.MomentBytes);
        // Only the 64-float alignment of each parameter on top of what the parameters need.
        Assert.InRange(store.Length - model.ParameterCount, 0, 64L * model.Parameters().Count());
        foreach (var p in model.Parameters())
        {
            Assert.Equal(0, store.Offsets[p] % 64);
            Assert.Equal(p.WeightDecay, store.Offsets[p] < store.DecayLength);
            if (p.Name.EndsWith("norm.weight")) Assert.All(p.ToArray(), w => Assert.Equal(1f, w));
        }
        // The planned values arrived, and building is deterministic.
        using var again = LanguageModel.Create(device, Small, seed: 10);
        foreach (var (p, q) in model.Parameters().Zip(again.Parameters())) Assert.Equal(p.ToArray(), q.ToArray());
        Assert.Contains(model.Parameters().SelectMany(p => p.ToArray()), w => w != 0 && w != 1);
        using (var scope = device.BeginScope())
        {
            var ids = FlowHN.Tensors.TokenIndex.FromHost(device, [1, 2, 3, 4], 1, 4);
            device.Tape.Backward(FlowHN.Autograd.Ops.Sum(model.Forward(ids, 1, 4)));
        }
        Assert.Contains(model.Parameters(), p => p.Grad!.ToArray().Any(g => g != 0));
        model.ZeroGrad();
        Assert.All(model.Parameters(), p => Assert.All(p.Grad!.ToArray(), g => Assert.Equal(0f, g)));
    }

    [Theory]
    [InlineData("transformer")]
    [InlineData("flowhn")]
    public void StepsBetweenLogLinesMakeTheHostWaitForNothing(string arch)
    {
        using var cache = new TempFolder();
        var data = SampleBytes(cache);
        var device = TestDevice.Cpu;
        (long Syncs, long Downloads, long Uploads, long StagingWaits) Train(int steps, int logEvery)
        {
            using var run = new TempFolder();
            using var model = LanguageModel.Create(device, Small with { Arch = arch }, seed: 3);
            // Evaluation and the checkpoint at the last step only: the steps before it are plain or logging steps.
            var options = QuickOptions(steps) with { LogEvery = logEvery, EvalEvery = steps, CheckpointEvery = steps };
            using var trainer = new Trainer(device, model, data, options, run.Path, TextWriter.Null);
            var c = device.Runtime.Counters;
            var before = (c.HostSyncs, c.Downloads, c.Uploads, c.StagingWaits);
            trainer.Run();
            return (c.HostSyncs - before.HostSyncs, c.Downloads - before.Downloads, c.Uploads - before.Uploads,
                c.StagingWaits - before.StagingWaits);
        }
        // Four more plain steps: one upload each (token ids, id plan and targets together, queued from page-locked
        // memory), no download (losses and gradient norms stay on the device until the read at the end) and no
        // host synchronisation at all.
        var four = Train(4, logEvery: 1000);
        var eight = Train(8, logEvery: 1000);
        Assert.Equal(4, eight.Uploads - four.Uploads);
        Assert.Equal(0, eight.Downloads - four.Downloads);
        Assert.Equal(0, eight.Syncs - four.Syncs);
        Assert.Equal(0, eight.StagingWaits); // the CPU accelerator's copies are done when they return
        // Logging every second step: the four more steps hold two logging steps, each one download and one wait.
        var fourLogged = Train(4, logEvery: 2);
        var eightLogged = Train(8, logEvery: 2);
        Assert.Equal(2, eightLogged.Downloads - fourLogged.Downloads);
        Assert.Equal(2, eightLogged.Syncs - fourLogged.Syncs);
    }

    [Fact]
    public void ANonFiniteLossBetweenLogLinesStillStopsBeforeTheNextCheckpoint()
    {
        using var cache = new TempFolder();
        using var run = new TempFolder();
        var data = SampleBytes(cache);
        var device = TestDevice.Cpu;
        var options = QuickOptions(6) with { LogEvery = 100, CheckpointEvery = 3 };
        using (var model = LanguageModel.Create(device, Small, seed: 7))
        using (var trainer = new Trainer(device, model, data, options, run.Path, TextWriter.Null))
            trainer.Run(stopAfter: 3);
        using var poisoned = LanguageModel.Create(device, Small, seed: 7);
        using var resumed = new Trainer(device, poisoned, data, options, run.Path, TextWriter.Null);
        resumed.Resume();
        var weight = poisoned.Parameters().First();
        weight.CopyFrom(Enumerable.Repeat(float.NaN, (int)weight.Length).ToArray());
        var e = Assert.Throws<UserException>(() => resumed.Run());
        Assert.Contains("step 4", e.Message); // read at step 6's checkpoint, named by the first bad step
        Assert.Equal(3, Checkpoint.LoadState(Checkpoint.PathIn(run.Path)).Step);
    }
}
