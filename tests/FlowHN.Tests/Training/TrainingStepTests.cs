using FlowHN.Autograd;
using FlowHN.Benchmarks;
using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Training;
using Xunit.Abstractions;

namespace FlowHN.Tests.Training;

/// <summary>Every place that takes a training step takes the same one, with the same memory.</summary>
public class TrainingStepTests(ITestOutputHelper output)
{
    /// <summary>
    /// The BenchmarkDotNet suite's step and a <c>flowhn train</c> step of the same model and batch hold the same
    /// peak of bytes above the model and optimizer state. A step whose loss does not overwrite the logits with their
    /// gradient holds a second [tokens, vocab] buffer at its peak, which this test tells apart by a factor of 16.
    /// </summary>
    [Theory]
    [InlineData("transformer")]
    [InlineData("flowhn-fac-prefix")]
    public void TheBenchmarkDotNetStepNeedsTheMemoryOfATrainStep(string benchModel)
    {
        var device = TestDevice.Cpu;
        const int batch = 2, seqLen = 64, vocab = 256; // the suite's CPU shape: tiny/2x64/256
        var bench = new TrainingStepBenchmarks { Model = benchModel, Shape = $"tiny/{batch}x{seqLen}/{vocab}" };
        bench.Setup(device);
        long benchPeak;
        try
        {
            bench.Step(); // the first step allocates what a model keeps for later steps (positions, routing tables)
            benchPeak = PeakAboveNow(device, bench.Step);
        }
        finally
        {
            bench.Release();
        }

        using var cache = new TempFolder();
        using var run = new TempFolder();
        var data = DataSource.Open(RepoPaths.Sample, "bytes", cache.Path);
        string[] words = benchModel.Split('-');
        var config = Presets.Get(words[0], "tiny", vocab);
        if (words.Length > 1) config = config with { Split = SplitWords.ParseStrategy(words[1]), SplitContext = SplitWords.ParseContext(words[2]) };
        using var model = LanguageModel.Create(device, config, seed: 1);
        var options = new TrainOptions { Steps = 2, Batch = batch, SeqLen = seqLen, EvalEvery = 1000, EvalBatches = 1, LogEvery = 1 };
        using var trainer = new Trainer(device, model, data, options, run.Path, TextWriter.Null);
        trainer.Run(stopAfter: 1);
        // Step 2 alone, as the suite's second step: evaluations and the step log are allocated by now.
        long trainPeak = PeakAboveNow(device, () => trainer.Run(stopAfter: 2));

        long logitsBytes = 4L * batch * seqLen * vocab;
        output.WriteLine($"{benchModel}: peak above the state: BenchmarkDotNet step {benchPeak:N0} B, train step {trainPeak:N0} B " +
                         $"(a logits gradient is {logitsBytes:N0} B)");
        Assert.True(Math.Abs(benchPeak - trainPeak) < logitsBytes / 16,
            $"The BenchmarkDotNet step peaks at {benchPeak:N0} B above the state, train's step at {trainPeak:N0} B.");
    }

    /// <summary>The most bytes the tensors asked for at once while <paramref name="work"/> ran, above those in use before.</summary>
    private static long PeakAboveNow(Session device, Action work)
    {
        device.Runtime.Synchronize();
        long before = device.Runtime.Allocator.RequestedBytesInUse;
        device.Runtime.Allocator.ResetPeak();
        work();
        device.Runtime.Synchronize();
        return device.Runtime.Allocator.PeakRequestedBytes - before;
    }
}
