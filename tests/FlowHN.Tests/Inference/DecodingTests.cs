using FlowHN.Autograd;
using FlowHN.Inference;
using FlowHN.Models;
using FlowHN.Tensors;

namespace FlowHN.Tests.Inference;

/// <summary>Prefill + decode steps against the full forward, for every architecture and FlowHN split.</summary>
public class DecodingTests
{
    private const int Vocab = 13;
    /// <summary>The trained length of the FlowHN models: the routing rule's period, shorter than the sequences tested.</summary>
    private const int Trained = 24;
    /// <summary>Beyond one scan chunk (64 steps) and several routing periods.</summary>
    private const int Total = 72;

    private static ModelConfig Config(string arch, SplitStrategy split = SplitStrategy.None, SplitContext context = SplitContext.Prefix) => new()
    {
        Arch = arch, VocabSize = Vocab, Dim = 8, Layers = arch == "jamba" ? 5 : 3, Heads = 2, KvHeads = 1, MlpHidden = 12,
        Rope = arch == "transformer", MambaState = 4, Split = split, SplitContext = context,
    };

    public static IEnumerable<object[]> Architectures()
    {
        foreach (var arch in new[] { "transformer", "mamba", "mamba2", "shm", "jamba", "hymba" })
            yield return [arch, SplitStrategy.None, SplitContext.Prefix];
        foreach (var split in Enum.GetValues<SplitStrategy>())
        foreach (var context in Enum.GetValues<SplitContext>())
            yield return ["flowhn", split, context];
    }

    private static LanguageModel Build(string arch, SplitStrategy split, SplitContext context, string device = "default")
    {
        var model = LanguageModel.Create(TestDevice.Get(device), Config(arch, split, context), seed: 5);
        model.TrainedLength = Trained;
        return model;
    }

    private static int[] Tokens(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => random.Next(Vocab)).ToArray();
    }

    private static float[] FullForward(LanguageModel model, int[] tokens)
    {
        var device = model.Device;
        using var scope = device.BeginScope();
        using var noGrad = new NoGradScope(device);
        return model.Forward(TokenIndex.FromHost(device, tokens, 1, tokens.Length), 1, tokens.Length).ToArray();
    }

    /// <summary>Logits of a prefill of the first <paramref name="prompt"/> tokens, then one decode step per token.</summary>
    private static float[] Decoded(LanguageModel model, int[] tokens, int prompt)
    {
        var device = model.Device;
        using var noGrad = new NoGradScope(device);
        using var state = model.CreateInferenceState();
        var logits = new List<float>();
        int at = 0;
        foreach (int length in new[] { prompt }.Concat(Enumerable.Repeat(1, tokens.Length - prompt)))
        {
            using var scope = device.BeginScope();
            var ids = TokenIndex.FromHost(device, tokens[at..(at + length)], 1, length);
            logits.AddRange(model.ForwardCached(ids, length, state).ToArray());
            at += length;
        }
        Assert.Equal(tokens.Length, state.Position);
        return logits.ToArray();
    }

    /// <summary>max |a - b| over max |b|: the error relative to the logits' scale.</summary>
    private static double RelativeError(float[] actual, float[] expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double worst = 0, scale = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(actual[i] - expected[i]));
            scale = Math.Max(scale, Math.Abs(expected[i]));
        }
        return worst / scale;
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void PrefillAndDecodeStepsMatchTheFullForward(string arch, SplitStrategy split, SplitContext context) =>
        AssertDecodingMatchesTheFullForward(arch, split, context, "default");

    [Theory]
    [InlineData("transformer", SplitStrategy.None, SplitContext.Prefix)]
    [InlineData("flowhn", SplitStrategy.FlopAwareCirculating, SplitContext.Prefix)]
    public void PrefillAndDecodeStepsMatchTheFullForwardOnTheGemmAttentionPath(string arch, SplitStrategy split, SplitContext context) =>
        AssertDecodingMatchesTheFullForward(arch, split, context, "gemm"); // cached keys: one query against many

    private static void AssertDecodingMatchesTheFullForward(string arch, SplitStrategy split, SplitContext context, string device)
    {
        using var model = Build(arch, split, context, device);
        var tokens = Tokens(Total, seed: 7);
        var full = FullForward(model, tokens);
        // A short prompt then decoding past the scan chunk and the period; a prompt past both then a few steps.
        foreach (int prompt in new[] { 3, 67 })
        {
            double error = RelativeError(Decoded(model, tokens, prompt), full);
            Assert.True(error <= 1e-5, $"{arch} {split}/{context}, prompt {prompt}: relative error {error:E2}");
        }
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void ForwardsOfAnyLengthAgreeOnTheirCommonPrefix(string arch, SplitStrategy split, SplitContext context)
    {
        using var model = Build(arch, split, context);
        var tokens = Tokens(50, seed: 8);
        var full = FullForward(model, tokens);
        foreach (int length in new[] { 1, 7, Trained, 31 })
        {
            var shorter = FullForward(model, tokens[..length]);
            Assert.True(RelativeError(shorter, full[..shorter.Length]) <= 1e-5, $"{arch} {split}/{context} at length {length}");
        }
    }

    [Theory]
    [InlineData(SplitStrategy.AlternatingEqual, SplitContext.Local)]
    [InlineData(SplitStrategy.FlopAware, SplitContext.Prefix)]
    [InlineData(SplitStrategy.FlopAwareCirculating, SplitContext.Local)]
    [InlineData(SplitStrategy.FlopAwareCirculating, SplitContext.Prefix)]
    public void RoutingByPositionIsTheTrainingPlanAtTheTrainedLength(SplitStrategy split, SplitContext context)
    {
        var tokens = Tokens(Trained, seed: 9);
        using var training = LanguageModel.Create(TestDevice.Cpu, Config("flowhn", split, context), seed: 5);
        using var inference = Build("flowhn", split, context);
        Assert.Equal(FullForward(training, tokens), FullForward(inference, tokens));
        var rule = new PositionRouting(split, context, 3, Trained, ((FlowHNLM)inference).AttentionTokens(Trained));
        for (int block = 0; block < 3; block++)
        {
            var plan = SplitPlanner.Plan(split, context, block, 3, Trained, ((FlowHNLM)inference).AttentionTokens(Trained));
            Assert.Equal(plan.AttentionPositions, rule.Plan(block, Trained).AttentionPositions);
            // Beyond the trained length the plan repeats: position p goes where p mod T went.
            for (int p = Trained; p < 3 * Trained; p++)
                Assert.Equal(plan.AttentionPositions.Contains(p % Trained), rule.ToAttention(block, p));
        }
    }

    [Theory]
    [InlineData("transformer")]
    [InlineData("flowhn")]
    public void BatchedGenerationOfPromptsOfDifferentLengthsMatchesEachAloneAndTheUncachedLoop(string arch)
    {
        using var model = Build(arch, arch == "flowhn" ? SplitStrategy.FlopAwareCirculating : SplitStrategy.None, SplitContext.Prefix);
        var generator = new Generator(model.Device, model);
        int[][] prompts = [Tokens(5, 1), Tokens(17, 2), Tokens(2, 3)];
        var options = new GenerationOptions { MaxNewTokens = 12, Sampling = new SamplingOptions(Temperature: 0), MaxContext = 20 };
        var (together, stats) = generator.Generate(prompts, options);
        // The 17-token prompt keeps its last 10 (room for new tokens, at most half the context given up); it then
        // fills the context of 20 and restarts from its last half.
        Assert.Equal(5 + 10 + 2, stats.PrefillTokens);
        Assert.Equal(36, stats.DecodedTokens);
        for (int i = 0; i < prompts.Length; i++)
        {
            var (alone, _) = generator.Generate([prompts[i]], options);
            Assert.Equal(alone[0].Tokens, together[i].Tokens);
        }
        // Within the context limit the uncached loop gives the same greedy tokens.
        var (uncached, _) = generator.Generate([prompts[0]], options with { Cached = false });
        Assert.Equal(uncached[0].Tokens, together[0].Tokens);
    }

    [Fact]
    public void ALongPromptKeepsItsEndAndGenerationStopsAtTheStopToken()
    {
        using var model = Build("mamba", SplitStrategy.None, SplitContext.Prefix);
        var generator = new Generator(model.Device, model);
        var prompt = Tokens(30, 4);
        var greedy = new GenerationOptions { MaxNewTokens = 6, Sampling = new SamplingOptions(Temperature: 0), MaxContext = 10 };
        var (results, _) = generator.Generate([prompt], greedy);
        // Room for the 6 new tokens, but at most half the context given up: the last 5 prompt tokens stay.
        Assert.Equal(25, results[0].TruncatedTokens);
        Assert.Equal(prompt[25..], results[0].Prompt);
        int first = results[0].Tokens[0];
        var (stopped, _) = generator.Generate([prompt], greedy with { StopToken = first });
        Assert.Equal([first], stopped[0].Tokens);
        Assert.True(stopped[0].Stopped);
    }

    [Fact]
    public void SamplingRespectsTopKAndTopP()
    {
        float[] logits = [0f, 3f, 2.9f, -5f, 1f];
        var random = new Random(1);
        var drawn = Enumerable.Range(0, 400).Select(_ => new SamplingOptions(1.0, TopK: 2).Sample(logits, random)).ToHashSet();
        Assert.Equal([1, 2], drawn.Order());
        // p(1) = 0.47, p(2) = 0.43: a nucleus of 0.4 keeps token 1 only, one of 0.8 both.
        Assert.All(Enumerable.Range(0, 100), _ => Assert.Equal(1, new SamplingOptions(1.0, 0, TopP: 0.4).Sample(logits, random)));
        drawn = Enumerable.Range(0, 400).Select(_ => new SamplingOptions(1.0, 0, TopP: 0.8).Sample(logits, random)).ToHashSet();
        Assert.Equal([1, 2], drawn.Order());
        Assert.Equal(1, new SamplingOptions(0).Sample(logits, random));
    }
}
