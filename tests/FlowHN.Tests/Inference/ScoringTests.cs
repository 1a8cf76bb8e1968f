using FlowHN.Autograd;
using FlowHN.Data;
using FlowHN.Inference;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Tests.Inference;

public class ScoringTests
{
    private static LanguageModel Model(string arch = "flowhn") => LanguageModel.Create(TestDevice.Cpu, new ModelConfig
    {
        Arch = arch, VocabSize = 256, Dim = 8, Layers = 2, Heads = 2, KvHeads = 1, MlpHidden = 12, Rope = arch == "transformer",
        MambaState = 4, Split = SplitStrategy.FlopAwareCirculating, SplitContext = SplitContext.Prefix,
    }, seed: 3).WithTrainedLength(16);

    /// <summary>log p(continuation | context) and the greedy check from one unbatched full forward, in float64.</summary>
    private static (double LogLikelihood, bool Greedy) Direct(LanguageModel model, ScoreRequest r)
    {
        var device = model.Device;
        var all = r.Context.Concat(r.Continuation).ToArray();
        var input = all[..^1];
        float[] logits;
        using (device.BeginScope())
        using (new NoGradScope(device))
            logits = model.Forward(TokenIndex.FromHost(device, input, 1, input.Length), 1, input.Length).ToArray();
        double sum = 0;
        bool greedy = true;
        for (int t = 0; t < r.Continuation.Length; t++)
        {
            var row = logits.AsSpan((input.Length - r.Continuation.Length + t) * 256, 256).ToArray();
            double max = row.Max(), lse = max + Math.Log(row.Sum(v => Math.Exp(v - max)));
            sum += row[r.Continuation[t]] - lse;
            greedy &= row[r.Continuation[t]] >= max;
        }
        return (sum, greedy);
    }

    [Theory]
    [InlineData("flowhn")]
    [InlineData("transformer")]
    public void BatchedScoresOfItemsOfDifferentLengthsEqualEachItemScoredAlone(string arch)
    {
        using var model = Model(arch);
        var random = new Random(2);
        int[] Tokens(int n) => Enumerable.Range(0, n).Select(_ => random.Next(256)).ToArray();
        var requests = new[] { (3, 2), (11, 1), (1, 4), (7, 3), (20, 2) }.Select(s => new ScoreRequest(Tokens(s.Item1), Tokens(s.Item2))).ToList();
        var scores = new Scorer(model.Device, model, maxLength: 32, batch: 3).Score(requests, greedy: true);
        for (int i = 0; i < requests.Count; i++)
        {
            var (expected, greedy) = Direct(model, requests[i]);
            Assert.Equal(expected, scores[i].LogLikelihood, 4);
            Assert.Equal(greedy, scores[i].Greedy);
        }
        // The greedy next token of an item's context, so the greedy check is seen true as well as false.
        var greedyRequest = new ScoreRequest(requests[1].Context, [ArgMaxNext(model, requests[1].Context)]);
        Assert.True(new Scorer(model.Device, model, 32, 2).Score([greedyRequest, requests[0]], greedy: true)[0].Greedy);
    }

    private static int ArgMaxNext(LanguageModel model, int[] context)
    {
        var device = model.Device;
        using var scope = device.BeginScope();
        using var noGrad = new NoGradScope(device);
        var logits = model.Forward(TokenIndex.FromHost(device, context, 1, context.Length), 1, context.Length).ToArray();
        var last = logits[^256..];
        return Array.IndexOf(last, last.Max());
    }

    [Fact]
    public void ChoiceAccuracyFollowsTheLogLikelihoodAndItsPerCharacterNorm()
    {
        using var model = Model();
        using var folder = new TempFolder();
        var tokenizer = new ByteTokenizer();
        var scorer = new Scorer(model.Device, model, 32, 4);
        var choices = new[] { " ab", " abcdefgh", " x" };
        var ll = choices.Select(c => scorer.Score([new ScoreRequest(tokenizer.Encode("The cat"), tokenizer.Encode(c))], false)[0].LogLikelihood)
            .ToArray();
        int best = Array.IndexOf(ll, ll.Max());
        var perChar = ll.Select((v, i) => v / choices[i].Length).ToArray();
        int bestNorm = Array.IndexOf(perChar, perChar.Max());
        string file = folder.Write("c.jsonl",
            $$"""{"context": "The cat", "choices": [" ab", " abcdefgh", " x"], "gold": {{best}}}""" + "\n\n" +
            $$"""{"context": "The cat", "choices": [" ab", " abcdefgh", " x"], "gold": {{bestNorm}}}""" + "\n");
        var result = new EvalTasks(scorer, tokenizer).Choice(file);
        Assert.Equal(2, result.Items);
        Assert.Equal(best == bestNorm ? 1.0 : 0.5, result.Metrics["acc"]);
        Assert.Equal(best == bestNorm ? 1.0 : 0.5, result.Metrics["acc_norm"]);
    }

    [Fact]
    public void ClozeTargetIsTheLastWordWithItsLeadingSpace()
    {
        using var folder = new TempFolder();
        var items = EvalItems.ReadCloze(folder.Write("l.jsonl", "{\"text\": \"the quick brown fox\"}\n{\"text\": \"a  b\\ncat \"}\n"));
        Assert.Equal(new ClozeItem("the quick brown", " fox"), items[0]);
        Assert.Equal(new ClozeItem("a  b", " cat"), items[1]);
    }

    [Fact]
    public void PerplexityPredictsEveryTokenButTheFirstOfEachDocument()
    {
        using var model = Model();
        using var folder = new TempFolder();
        folder.Write("texts/a.txt", new string('a', 40));
        folder.Write("texts/b.txt", "hello world");
        var result = new EvalTasks(new Scorer(model.Device, model, 16, 3), new ByteTokenizer()).Perplexity(folder.File("texts"), 16);
        Assert.Equal(2, result.Items);
        Assert.Equal(39 + 10, result.Metrics["tokens"]);
        // Byte tokens: one byte per token, so per-byte perplexity is the per-token one over 51 instead of 49 tokens.
        Assert.Equal(Math.Log(result.Metrics["ppl_token"]) * 49 / 51, Math.Log(result.Metrics["ppl_byte"]), 6);
    }

    [Theory]
    [InlineData("{\"text\": 5}", "line 2: field 'text' is missing or not a string")]
    [InlineData("{\"text\": \"single\"}", "line 2: field 'text' needs at least two words")]
    [InlineData("{\"text\": \"a b\"", "line 2: not valid JSON")]
    [InlineData("[1]", "line 2: expected a JSON object")]
    public void MalformedClozeLinesNameTheLineAndTheField(string line, string message)
    {
        using var folder = new TempFolder();
        string path = folder.Write("bad.jsonl", "{\"text\": \"a b\"}\n" + line + "\n");
        var error = Assert.Throws<UserException>(() => EvalItems.ReadCloze(path));
        Assert.Contains(message, error.Message);
    }

    [Theory]
    [InlineData("{\"choices\": [\"a\", \"b\"], \"gold\": 0}", "field 'context' is missing")]
    [InlineData("{\"context\": \"c\", \"choices\": \"a\", \"gold\": 0}", "field 'choices' is missing or not an array")]
    [InlineData("{\"context\": \"c\", \"choices\": [\"a\", 3], \"gold\": 0}", "field 'choices' item 1 is not a non-empty string")]
    [InlineData("{\"context\": \"c\", \"choices\": [\"a\"], \"gold\": 0}", "field 'choices' needs at least 2 choices")]
    [InlineData("{\"context\": \"c\", \"choices\": [\"a\", \"b\"]}", "field 'gold' is missing or not an integer")]
    [InlineData("{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"gold\": 2}", "field 'gold' is 2, outside 0..1")]
    public void MalformedChoiceLinesNameTheLineAndTheField(string line, string message)
    {
        using var folder = new TempFolder();
        string path = folder.Write("bad.jsonl", "\n" + line + "\n");
        var error = Assert.Throws<UserException>(() => EvalItems.ReadChoice(path));
        Assert.Contains("bad.jsonl line 2: " + message, error.Message);
    }
}

internal static class ModelSetup
{
    public static LanguageModel WithTrainedLength(this LanguageModel model, int length)
    {
        model.TrainedLength = length;
        return model;
    }
}
