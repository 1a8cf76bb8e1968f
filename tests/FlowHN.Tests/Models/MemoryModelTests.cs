using FlowHN.Kernels;
using FlowHN.Models;
using FlowHN.Training;
using Xunit.Abstractions;

namespace FlowHN.Tests.Models;

public class MemoryModelTests(ITestOutputHelper output)
{
    public static IEnumerable<object[]> Architectures() =>
    [
        ["transformer", "none", "prefix"], ["mamba", "none", "prefix"], ["mamba2", "none", "prefix"], ["shm", "none", "prefix"], ["jamba", "none", "prefix"],
        ["hymba", "none", "prefix"], ["flowhn", "none", "prefix"], ["flowhn", "ae", "local"], ["flowhn", "ae", "prefix"],
        ["flowhn", "fa", "local"], ["flowhn", "fa", "prefix"], ["flowhn", "fac", "local"], ["flowhn", "fac", "prefix"],
    ];

    [Theory]
    [MemberData(nameof(Architectures))]
    public void PredictsStateAndActivationsOfATrainingStep(string arch, string split, string context)
    {
        var config = Presets.Get(arch, "tiny", 256) with
        {
            Split = SplitWords.ParseStrategy(split), SplitContext = SplitWords.ParseContext(context),
        };
        AssertPredicted(TestDevice.Cpu, config, batch: 2, seqLen: 96);
    }

    [Fact]
    public void FollowsTheKernelsLaunchShapesOnAnotherDevice()
    {
        // The wide CPU preset reduces the scan's dB/dC over 4 lanes, which changes the backward's scratch.
        var config = Presets.Get("flowhn", "tiny", 64) with
        {
            Dim = 32, Heads = 2, KvHeads = 1, MlpHidden = 64, Split = SplitStrategy.FlopAwareCirculating,
        };
        AssertPredicted(TestDevice.Wide, config, batch: 3, seqLen: 40);
    }

    [Theory]
    [InlineData("flowhn")]
    [InlineData("jamba")]
    public void PredictsAStepThatKeepsEverythingUntilItEnds(string arch)
    {
        var device = TestDevice.Cpu;
        device.Tape.ReleaseSegments = false;
        try
        {
            AssertPredicted(device, Presets.Get(arch, "tiny", 256), batch: 2, seqLen: 64);
        }
        finally
        {
            device.Tape.ReleaseSegments = true;
        }
    }

    [Theory]
    [InlineData("flowhn", "fac")]
    [InlineData("flowhn", "none")]
    [InlineData("transformer", "none")]
    [InlineData("hymba", "none")]
    public void PredictsARecomputingStep(string arch, string split)
    {
        var config = Presets.Get(arch, "tiny", 256) with { Layers = 6, Split = SplitWords.ParseStrategy(split) };
        var memory = StepBenchmark.Run(TestDevice.Cpu, config, 2, 64, warmup: 1, steps: 1, breakdown: false, recompute: true).Memory;
        output.WriteLine($"activations/token {memory.ActivationBytesPerToken:0} vs {memory.Predicted.ActivationBytesPerToken:0}");
        Assert.InRange(memory.Predicted.ActivationBytesPerToken / memory.ActivationBytesPerToken, 0.98, 1.02);
    }

    [Fact]
    public void ReleasingLayersAfterTheirBackwardLowersThePeak()
    {
        var config = Presets.Get("flowhn", "1b", 50257) with { Split = SplitStrategy.None };
        double released = MemoryModel.Estimate(config, 8, 1024, KernelGeometry.Cuda).ActivationBytesPerToken;
        double kept = MemoryModel.Estimate(config, 8, 1024, KernelGeometry.Cuda, ActivationMemory.Kept).ActivationBytesPerToken;
        double recomputed = MemoryModel.Estimate(config, 8, 1024, KernelGeometry.Cuda, ActivationMemory.Recomputed).ActivationBytesPerToken;
        output.WriteLine($"flowhn 1b: {kept / 1024:0} KiB/token kept, {released / 1024:0} released, {recomputed / 1024:0} recomputed");
        Assert.True(released < 0.7 * kept);
        Assert.True(recomputed < 0.5 * released);
    }

    private void AssertPredicted(FlowHN.Runtime.ComputeDevice device, ModelConfig config, int batch, int seqLen)
    {
        var memory = StepBenchmark.Run(device, config, batch, seqLen, warmup: 1, steps: 1, breakdown: false).Memory;
        output.WriteLine($"state {memory.StateBytes} vs {memory.Predicted.StateBytes}; activations/token " +
                         $"{memory.ActivationBytesPerToken:0} vs {memory.Predicted.ActivationBytesPerToken:0}");
        // State leaves out the flat buffers' alignment padding (up to 64 floats per tensor) and the position tables:
        // about 1% of the tiny models here, far less of real ones.
        Assert.InRange(memory.Predicted.StateBytes / (double)memory.StateBytes, 0.98, 1.0);
        Assert.InRange(memory.Predicted.ActivationBytesPerToken / memory.ActivationBytesPerToken, 0.98, 1.02);
    }

    [Fact]
    public void StateIsSixteenBytesPerParameter()
    {
        var config = Presets.Get("mamba", "small", 50257);
        Assert.Equal(16 * LanguageModel.CountParameters(config), MemoryModel.Estimate(config, 1, 64, KernelGeometry.Cuda).StateBytes);
    }

    [Fact]
    public void ActivationsPerTokenDoNotDependOnTheBatchButGrowWithTheModel()
    {
        var config = Presets.Get("transformer", "135m", 50257);
        double one = MemoryModel.Estimate(config, 1, 256, KernelGeometry.Cuda).ActivationBytesPerToken;
        double eight = MemoryModel.Estimate(config, 8, 256, KernelGeometry.Cuda).ActivationBytesPerToken;
        Assert.Equal(one, eight, 6);
        // Twice the layers: twice the forward activations, while the backward of one layer stays on top of them.
        double deeper = MemoryModel.Estimate(config with { Layers = 10 }, 1, 256, KernelGeometry.Cuda).ActivationBytesPerToken;
        output.WriteLine($"5 layers {one / 1024:0} KiB/token, 10 layers {deeper / 1024:0}");
        Assert.InRange(deeper / one, 1.3, 2.0);
    }

    [Theory]
    [InlineData("flowhn", "none")]
    [InlineData("flowhn", "fac")]
    [InlineData("transformer", "none")]
    [InlineData("hymba", "none")]
    public void OneBillionParametersAtBatch8x1024FitIn80GB(string arch, string split)
    {
        // The memory target, as far as the model can tell without a GPU (GPT-2 vocabulary, CUDA launch shapes).
        var config = Presets.Get(arch, "1b", 50257) with { Split = SplitWords.ParseStrategy(split) };
        double bytes = MemoryModel.Estimate(config, 8, 1024, KernelGeometry.Cuda).StepBytes(8 * 1024);
        output.WriteLine($"{arch} {split}: {bytes / (1L << 30):0.0} GiB");
        Assert.True(bytes < 80e9 * 0.95, $"{bytes / 1e9:0.0} GB");
    }
}
