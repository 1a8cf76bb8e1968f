using FlowHN.Runtime;
using FlowHN.Autograd;
using FlowHN.Models;
using FlowHN.Diagnostics;
using FlowHN.Training;
using Xunit.Abstractions;

namespace FlowHN.Tests.Models;

public class MemoryMeasureTests(ITestOutputHelper output)
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
        using var device = new Session(TestDevice.Cpu.Runtime); // its own tape: the setting stays here
        device.Tape.ReleaseSegments = false;
        AssertPredicted(device, Presets.Get(arch, "tiny", 256), batch: 2, seqLen: 64);
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
        AssertActivations(memory, config, 2 * 64);
    }

    [Fact]
    public void ReleasingLayersAfterTheirBackwardLowersThePeak()
    {
        var config = Presets.Get("flowhn", "1b", 50257) with { Split = SplitStrategy.None };
        double released = MemoryMeasure.Estimate(config, 8, 1024, MemoryMeasure.Cuda).ActivationBytesPerToken;
        double kept = MemoryMeasure.Estimate(config, 8, 1024, MemoryMeasure.Cuda, ActivationMemory.Kept).ActivationBytesPerToken;
        double recomputed = MemoryMeasure.Estimate(config, 8, 1024, MemoryMeasure.Cuda, ActivationMemory.Recomputed).ActivationBytesPerToken;
        output.WriteLine($"flowhn 1b: {kept / 1024:0} KiB/token kept, {released / 1024:0} released, {recomputed / 1024:0} recomputed");
        Assert.True(released < 0.7 * kept);
        Assert.True(recomputed < 0.5 * released);
    }

    private void AssertPredicted(Session device, ModelConfig config, int batch, int seqLen)
    {
        var memory = StepBenchmark.Run(device, config, batch, seqLen, warmup: 1, steps: 1, breakdown: false).Memory;
        output.WriteLine($"state {memory.StateBytes} vs {memory.Predicted.StateBytes}; activations/token " +
                         $"{memory.ActivationBytesPerToken:0} vs {memory.Predicted.ActivationBytesPerToken:0}");
        // The shape-only step makes the same requests as the real one: the same state, to the byte.
        Assert.Equal(memory.StateBytes, memory.Predicted.StateBytes);
        AssertActivations(memory, config, batch * seqLen);
    }

    /// <summary>
    /// Only the token ids decide one size: the embedding backward's plan holds each distinct id once (two ints).
    /// The measurement gives every token its own id, the most a batch can have; a random batch has fewer.
    /// </summary>
    private static void AssertActivations(StepMemory memory, ModelConfig config, int tokens)
    {
        double slack = 2.0 * sizeof(int) * Math.Min(tokens, config.VocabSize) / tokens;
        Assert.InRange(memory.Predicted.ActivationBytesPerToken - memory.ActivationBytesPerToken, 0, slack);
    }

    [Fact]
    public void StateIsSixteenBytesPerParameterAndVocabularyPaddingRow()
    {
        var config = Presets.Get("mamba", "small", 50257);
        long padding = 2L * (50304 - 50257) * config.Dim; // the embedding's and the LM head's rows 50,257 .. 50,303
        double state = MemoryMeasure.Estimate(config, 1, 64, MemoryMeasure.Cuda).StateBytes;
        // Above it only by the flat buffers' 256-byte alignment of each tensor and the small position tables.
        Assert.InRange(state / (16.0 * (LanguageModel.CountParameters(config) + padding)), 1.0, 1.001);
    }

    [Theory]
    [InlineData("transformer")]
    [InlineData("flowhn")]
    public void PredictsAStepWithAPaddedVocabulary(string arch)
    {
        // 100 tokens are allocated as 128 rows: the padded logits and the padding rows of the state are counted.
        AssertPredicted(TestDevice.Cpu, Presets.Get(arch, "tiny", 100), batch: 2, seqLen: 64);
    }

    [Fact]
    public void ActivationsPerTokenDoNotDependOnTheBatchButGrowWithTheModel()
    {
        var config = Presets.Get("transformer", "135m", 50257);
        // The flash path: the gemm path's score blocks are per launch, not per token (see the test below).
        var flash = MemoryMeasure.Cuda with { Attention = AttentionPathKind.Flash };
        double one = MemoryMeasure.Estimate(config, 1, 256, flash).ActivationBytesPerToken;
        double eight = MemoryMeasure.Estimate(config, 8, 256, flash).ActivationBytesPerToken;
        output.WriteLine($"batch 1 {one:0.0} B/token, batch 8 {eight:0.0}");
        Assert.InRange(eight / one, 0.999, 1.001); // only small per-launch scratch (reduction partials) is not per token
        // Twice the layers: twice the forward activations, while the backward of one layer stays on top of them.
        double deeper = MemoryMeasure.Estimate(config with { Layers = 10 }, 1, 256, flash).ActivationBytesPerToken;
        output.WriteLine($"5 layers {one / 1024:0} KiB/token, 10 layers {deeper / 1024:0}");
        Assert.InRange(deeper / one, 1.3, 2.0);
    }

    [Fact]
    public void TheGemmAttentionPathsScoreBlocksAreMeasured()
    {
        // A GPU picks the gemm path (auto with cuBLAS). A score block is heads x 256 queries x the keys of the
        // longest block; each layer's forward keeps one until its backward (launch scratch lives with its layer's
        // memory segment) and the backward adds two (P and dS), which the flash path never stores.
        var config = Presets.Get("transformer", "135m", 50257);
        const int length = 512;
        double Step(AttentionPathKind path) =>
            MemoryMeasure.Estimate(config, 1, length, MemoryMeasure.Cuda with { Attention = path }).StepBytes(length);
        double extra = Step(AttentionPathKind.Gemm) - Step(AttentionPathKind.Flash);
        double scoreBlock = (double)config.Heads * 256 * length * sizeof(float);
        output.WriteLine($"gemm path: {extra / (1 << 20):0.00} MiB more than flash; a score block {scoreBlock / (1 << 20):0.00} MiB, {config.Layers} layers");
        Assert.InRange(extra / scoreBlock, config.Layers + 2 - 0.01, config.Layers + 2 + 0.05);
        Assert.Equal(Step(AttentionPathKind.Gemm), Step(AttentionPathKind.Auto));
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
        double bytes = MemoryMeasure.Estimate(config, 8, 1024, MemoryMeasure.Cuda).StepBytes(8 * 1024);
        output.WriteLine($"{arch} {split}: {bytes / (1L << 30):0.0} GiB");
        Assert.True(bytes < 80e9 * 0.95, $"{bytes / 1e9:0.0} GB");
    }
}
