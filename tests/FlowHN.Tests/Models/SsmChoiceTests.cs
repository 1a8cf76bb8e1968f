using System.Text.Json;
using FlowHN.Diagnostics;
using FlowHN.Autograd;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Tensors;
using FlowHN.Training;

namespace FlowHN.Tests.Models;

/// <summary>
/// <c>--ssm mamba2</c>: the SSM layers of flowhn, shm, jamba and hymba become Mamba-2 mixers; counts, causality and the
/// memory model hold for them, and architectures without SSM layers to choose refuse it.
/// </summary>
public class SsmChoiceTests
{
    private static ModelConfig Tiny(string arch, SplitStrategy split = SplitStrategy.None, SplitContext context = SplitContext.Prefix) => new()
    {
        Arch = arch, VocabSize = 11, Dim = 8, Layers = arch == "flowhn" ? 3 : 5, Heads = 2, KvHeads = 1, MlpHidden = 12, Rope = false,
        MambaState = 4, Split = split, SplitContext = context, Ssm = SsmKind.Mamba2,
    };

    public static IEnumerable<object[]> Models() =>
    [
        ["flowhn", SplitStrategy.None, SplitContext.Local], ["flowhn", SplitStrategy.FlopAwareCirculating, SplitContext.Prefix],
        ["flowhn", SplitStrategy.AlternatingEqual, SplitContext.Local], ["shm", SplitStrategy.None, SplitContext.Prefix],
        ["jamba", SplitStrategy.None, SplitContext.Prefix], ["hymba", SplitStrategy.None, SplitContext.Prefix],
    ];

    [Theory]
    [MemberData(nameof(Models))]
    public void ParameterCountMatchesAndTheSsmLayersAreMamba2(string arch, SplitStrategy split, SplitContext context)
    {
        var config = Tiny(arch, split, context);
        using var model = LanguageModel.Create(TestDevice.Cpu, config, seed: 1);
        Assert.Equal(LanguageModel.CountParameters(config), model.ParameterCount);
        var names = model.Parameters().Select(p => p.Name).ToList();
        Assert.Contains(names, n => n.EndsWith(".mamba2.dt_bias", StringComparison.Ordinal));
        Assert.DoesNotContain(names, n => n.Contains(".mamba.", StringComparison.Ordinal));
        Assert.NotEqual(LanguageModel.CountParameters(config with { Ssm = SsmKind.Mamba1 }), model.ParameterCount);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void LogitsAtOrBeforeAPositionNeverDependOnLaterTokens(string arch, SplitStrategy split, SplitContext context)
    {
        var device = TestDevice.Cpu;
        using var model = LanguageModel.Create(device, Tiny(arch, split, context), seed: 2);
        const int length = 9;
        var random = new Random(3);
        int[] a = Enumerable.Range(0, length).Select(_ => random.Next(11)).ToArray();
        using var scope = device.BeginScope();
        using var noGrad = new NoGradScope(device);
        float[] Logits(int[] ids) => model.Forward(TokenIndex.FromHost(device, ids, 1, length), 1, length).ToArray();
        var reference = Logits(a);
        for (int t = 0; t < length - 1; t++)
        {
            var b = (int[])a.Clone();
            for (int i = t + 1; i < length; i++) b[i] = (a[i] + 1 + i) % 11;
            var changed = Logits(b);
            int prefix = (t + 1) * 11;
            Assert.Equal(reference[..prefix], changed[..prefix]);
            Assert.NotEqual(reference[prefix..(prefix + 11)], changed[prefix..(prefix + 11)]);
        }
    }

    [Theory]
    [InlineData("flowhn", "fac", "prefix")]
    [InlineData("flowhn", "none", "local")]
    [InlineData("shm", "none", "prefix")]
    [InlineData("hymba", "none", "prefix")]
    public void MemoryModelPredictsATrainingStep(string arch, string split, string context)
    {
        var config = Presets.Get(arch, "tiny", 256) with
        {
            Split = SplitWords.ParseStrategy(split), SplitContext = SplitWords.ParseContext(context), Ssm = SsmKind.Mamba2,
        };
        var memory = StepBenchmark.Run(TestDevice.Cpu, config, 2, 96, warmup: 1, steps: 1, breakdown: false).Memory;
        Assert.InRange(memory.Predicted.StateBytes / (double)memory.StateBytes, 0.98, 1.0);
        Assert.InRange(memory.Predicted.ActivationBytesPerToken / memory.ActivationBytesPerToken, 0.98, 1.02);
    }

    [Fact]
    public void PresetsStayParamsMatchedWithMamba2()
    {
        foreach (var arch in ArchitectureRegistry.All.Where(a => a.ChoosesSsm))
            foreach (var preset in arch.Presets)
            {
                long flowhn = LanguageModel.CountParameters(Presets.Get("flowhn", preset.Name, 50257));
                long count = LanguageModel.CountParameters(arch.Config(preset.Name, 50257) with { Ssm = SsmKind.Mamba2 });
                Assert.InRange(count / (double)flowhn, 0.9, 1.1);
            }
    }

    [Theory]
    [InlineData("mamba")]
    [InlineData("transformer")]
    [InlineData("mamba2")]
    public void ArchitecturesWithoutAChoiceRefuseMamba2(string arch)
    {
        var config = Tiny(arch);
        var e = Assert.Throws<UserException>(() => config.Validate());
        Assert.Contains("--ssm mamba2", e.Message);
    }

    [Fact]
    public void ConfigsSavedWithoutTheOptionReadAsMamba1AndTheChoiceRoundTrips()
    {
        var json = JsonSerializer.Serialize(Tiny("flowhn"));
        Assert.Equal(SsmKind.Mamba2, JsonSerializer.Deserialize<ModelConfig>(json)!.Ssm);
        var old = json.Replace("\"Ssm\":\"Mamba2\",", "", StringComparison.Ordinal);
        Assert.DoesNotContain("Ssm", old);
        Assert.Equal(SsmKind.Mamba1, JsonSerializer.Deserialize<ModelConfig>(old)!.Ssm);
    }
}

/// <summary>Cached generation through Mamba-2 SSM layers of the hybrids: the carried conv and SSD states.</summary>
public class SsmChoiceDecodingTests
{
    [Theory]
    [InlineData("flowhn", SplitStrategy.None, SplitContext.Prefix)]
    [InlineData("flowhn", SplitStrategy.FlopAwareCirculating, SplitContext.Prefix)]
    [InlineData("flowhn", SplitStrategy.FlopAwareCirculating, SplitContext.Local)]
    [InlineData("hymba", SplitStrategy.None, SplitContext.Prefix)]
    [InlineData("shm", SplitStrategy.None, SplitContext.Prefix)]
    public void PrefillAndDecodeStepsMatchTheFullForward(string arch, SplitStrategy split, SplitContext context)
    {
        var device = TestDevice.Cpu;
        var config = new ModelConfig
        {
            Arch = arch, VocabSize = 13, Dim = 8, Layers = 3, Heads = 2, KvHeads = 1, MlpHidden = 12, Rope = false,
            Split = split, SplitContext = context, Ssm = SsmKind.Mamba2,
        };
        using var model = LanguageModel.Create(device, config, seed: 5);
        model.TrainedLength = 24;
        var random = new Random(7);
        int[] tokens = Enumerable.Range(0, 72).Select(_ => random.Next(13)).ToArray(); // past one SSD chunk (64)
        using var noGrad = new NoGradScope(device);
        float[] full;
        using (device.BeginScope()) full = model.Forward(TokenIndex.FromHost(device, tokens, 1, tokens.Length), 1, tokens.Length).ToArray();
        foreach (int prompt in new[] { 3, 67 })
        {
            using var state = model.CreateInferenceState();
            var logits = new List<float>();
            int at = 0;
            foreach (int length in new[] { prompt }.Concat(Enumerable.Repeat(1, tokens.Length - prompt)))
            {
                using var scope = device.BeginScope();
                logits.AddRange(model.ForwardCached(TokenIndex.FromHost(device, tokens[at..(at + length)], 1, length), length, state).ToArray());
                at += length;
            }
            double scale = full.Max(Math.Abs), worst = full.Select((v, i) => Math.Abs(v - logits[i])).Max();
            Assert.True(worst / scale <= 1e-5, $"{arch} {split}/{context}, prompt {prompt}: relative error {worst / scale:E2}");
        }
    }
}
