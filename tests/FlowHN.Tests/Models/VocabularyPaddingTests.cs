using FlowHN.Autograd;
using FlowHN.Data;
using FlowHN.Diagnostics;
using FlowHN.Inference;
using FlowHN.Models;
using FlowHN.Nn;
using FlowHN.Tensors;
using FlowHN.Tests.Inference;
using FlowHN.Training;

namespace FlowHN.Tests.Models;

/// <summary>
/// The embedding and LM head hold the vocabulary rounded up to 64 rows; the padding is invisible to everything
/// else: logits, loss, gradients, sampling, scoring, checkpoints and parameter counts see exactly V tokens.
/// </summary>
public class VocabularyPaddingTests
{
    private const int Vocab = 50, Padded = 64;

    private static ModelConfig Config(string arch, int vocab = Vocab) => new()
    {
        Arch = arch, VocabSize = vocab, Dim = 8, Layers = 2, Heads = 2, KvHeads = 1, MlpHidden = 12, Rope = arch == "transformer",
        MambaState = 4, Split = arch == "flowhn" ? SplitStrategy.FlopAwareCirculating : SplitStrategy.None, SplitContext = SplitContext.Prefix,
    };

    private static LanguageModel Model(string arch, int vocab = Vocab, int seed = 3) =>
        LanguageModel.Create(TestDevice.Cpu, Config(arch, vocab), seed).WithTrainedLength(16);

    private static TokenBatch Batch(int seed, int vocab = Vocab)
    {
        var tokens = Reference.RandomInts(2 * 17, vocab, seed);
        var inputs = Enumerable.Range(0, 2).SelectMany(r => tokens[(r * 17)..(r * 17 + 16)]).ToArray();
        var targets = Enumerable.Range(0, 2).SelectMany(r => tokens[(r * 17 + 1)..(r * 17 + 17)]).ToArray();
        return new TokenBatch(inputs, targets, 2, 16);
    }

    private static Parameter Weight(LanguageModel model, string name) => model.Parameters().Single(p => p.Name == name);

    [Theory]
    [InlineData(1, 64)]
    [InlineData(50, 64)]
    [InlineData(64, 64)]
    [InlineData(100, 128)]
    [InlineData(256, 256)]
    [InlineData(50257, 50304)]
    public void TheVocabularyIsRoundedUpToAMultipleOf64(int vocab, int rows)
    {
        Assert.Equal(64, VocabularyPadding.Multiple);
        Assert.Equal(rows, VocabularyPadding.Rows(vocab));
    }

    [Theory]
    [InlineData("transformer")]
    [InlineData("flowhn")]
    public void TheTablesHavePaddingRowsButCountsAndLogitsHaveTheVocabulary(string arch)
    {
        using var model = Model(arch);
        foreach (var name in new[] { "embed.weight", "lm_head.weight" })
        {
            var p = Weight(model, name);
            Assert.Equal([Padded, 8], p.Shape);
            Assert.Equal(Vocab, p.RealRows);
            Assert.Equal([Vocab, 8], p.Real.Shape);
            Assert.All(p.ToArray()[(Vocab * 8)..], v => Assert.Equal(0f, v)); // padding starts at zero
            Assert.Contains(p.Real.ToArray(), v => v != 0);
        }
        Assert.Equal(LanguageModel.CountParameters(model.Config), model.ParameterCount);
        var device = model.Device;
        using var scope = device.BeginScope();
        using var noGrad = new NoGradScope(device);
        var batch = Batch(1);
        var logits = model.Forward(TokenIndex.FromHost(device, batch.Inputs, 2, 16), 2, 16);
        Assert.Equal([2, 16, Vocab], logits.Shape);
        Assert.Equal(Padded, logits.Strides[^2]); // a view of the padded product's aligned rows
        Assert.Equal(2 * 16 * Vocab, logits.ToArray().Length);
    }

    [Fact]
    public void TheLossIsTheCrossEntropyOverTheVocabularyOnly()
    {
        using var model = Model("transformer");
        var device = model.Device;
        using var scope = device.BeginScope();
        using var noGrad = new NoGradScope(device);
        var batch = Batch(2);
        var logits = model.Forward(TokenIndex.FromHost(device, batch.Inputs, 2, 16), 2, 16);
        var expected = HostReference.CrossEntropy(logits.ToArray(), batch.Targets, Vocab, -1).Loss;
        float loss = Ops.CrossEntropy(logits, Tensor.FromArray(device, batch.Targets, 32)).Item();
        Assert.Equal(expected, loss, 5);
        // The padding logits are zeros: counted in the softmax, they would add 14 zero logits to each row.
        var withPadding = Widen(logits.ToArray(), Vocab, Padded);
        Assert.NotEqual(expected, HostReference.CrossEntropy(withPadding, batch.Targets, Padded, -1).Loss, 3);
    }

    private static float[] Widen(float[] rows, int vocab, int width)
    {
        var wide = new float[rows.Length / vocab * width];
        for (int r = 0; r < rows.Length / vocab; r++) Array.Copy(rows, r * vocab, wide, r * width, vocab);
        return wide;
    }

    [Theory]
    [InlineData("transformer")]
    [InlineData("flowhn")]
    public void NothingReadsThePaddingRows(string arch)
    {
        // NaN in every padding row: if the loss, a gradient, generation or scoring read one, it would show.
        using var clean = Model(arch);
        using var poisoned = Model(arch);
        foreach (var name in new[] { "embed.weight", "lm_head.weight" })
        {
            var p = Weight(poisoned, name);
            var values = p.ToArray();
            Array.Fill(values, float.NaN, Vocab * 8, (Padded - Vocab) * 8);
            p.CopyFrom(values);
        }
        var batch = Batch(3);
        var (cleanLoss, cleanGrads) = LossAndGradients(clean, batch, overwrite: true);
        var (loss, grads) = LossAndGradients(poisoned, batch, overwrite: true);
        Assert.Equal(cleanLoss, loss);
        for (int i = 0; i < grads.Count; i++) Assert.Equal(cleanGrads[i], grads[i]);

        var prompts = new[] { new[] { 1, 2, 3 }, new[] { 40, 41 } };
        var options = new GenerationOptions { MaxNewTokens = 12, Sampling = new SamplingOptions(Temperature: 1.5, TopK: 0) };
        var expected = new Generator(clean.Device, clean).Generate(prompts, options).Results.Select(r => r.Tokens).ToList();
        var generated = new Generator(poisoned.Device, poisoned).Generate(prompts, options).Results.Select(r => r.Tokens).ToList();
        Assert.Equal(expected, generated);
        Assert.All(generated.SelectMany(t => t), t => Assert.InRange(t, 0, Vocab - 1));

        var requests = new[] { new ScoreRequest([1, 2, 3, 4], [5, 6]), new ScoreRequest([7], [49, 0, 3]) };
        var cleanScores = new Scorer(clean.Device, clean, maxLength: 16, batch: 2).Score(requests, greedy: true);
        var scores = new Scorer(poisoned.Device, poisoned, maxLength: 16, batch: 2).Score(requests, greedy: true);
        Assert.Equal(cleanScores, scores);
        Assert.All(scores, s => Assert.True(double.IsFinite(s.LogLikelihood)));
    }

    /// <summary>The loss and every parameter's gradient (real rows, then padding rows) after one backward.</summary>
    private static (float Loss, List<float[]> Gradients) LossAndGradients(LanguageModel model, TokenBatch batch, bool overwrite)
    {
        var device = model.Device;
        float loss;
        using (device.BeginScope())
        {
            var ids = TokenIndex.FromBatch(device, batch.Inputs, batch.Targets, batch.BatchSize, batch.SeqLen);
            var l = Ops.CrossEntropy(model.Forward(ids, 2, 16), ids.Targets!, overwriteLogits: overwrite);
            device.Tape.Backward(l);
            loss = l.Item();
        }
        var grads = model.Parameters().Select(p => p.Grad!.ToArray()).ToList();
        model.ZeroGrad();
        return (loss, grads);
    }

    [Fact]
    public void WritingTheGradientOverThePaddedLogitsGivesTheSameGradients()
    {
        using var model = Model("transformer");
        var batch = Batch(4);
        var (lossA, inPlace) = LossAndGradients(model, batch, overwrite: true);
        var (lossB, separate) = LossAndGradients(model, batch, overwrite: false);
        Assert.Equal(lossA, lossB);
        for (int i = 0; i < inPlace.Count; i++) Assert.Equal(separate[i], inPlace[i]);
    }

    [Theory]
    [InlineData("transformer")]
    [InlineData("flowhn")]
    public void ThePaddingRowsGetNoGradientMomentOrWeightDecay(string arch)
    {
        using var model = Model(arch);
        var device = model.Device;
        using var optimizer = new AdamW(device, model.Parameters().ToList(), weightDecay: 0.5);
        var before = model.Parameters().ToDictionary(p => p.Name, p => p.Real.ToArray());
        for (int step = 0; step < 3; step++)
        {
            using (device.BeginScope())
            {
                var loss = Evaluation.Loss(device, model, Batch(10 + step));
                device.Tape.Backward(loss);
                foreach (var name in new[] { "embed.weight", "lm_head.weight" })
                    AssertPaddingZero(Weight(model, name), Weight(model, name).Grad!);
                optimizer.Step(1e-2);
            }
            model.ZeroGrad();
        }
        foreach (var name in new[] { "embed.weight", "lm_head.weight" })
        {
            var p = Weight(model, name);
            var (m, v) = optimizer.StateOf(p);
            AssertPaddingZero(p, p);
            AssertPaddingZero(p, m);
            AssertPaddingZero(p, v);
            Assert.NotEqual(before[name], p.Real.ToArray()); // the real rows did train
        }
    }

    private static void AssertPaddingZero(Parameter p, Tensor t) =>
        Assert.All(t.ToArray()[(int)p.RealLength..], v => Assert.Equal(0f, v));

    [Fact]
    public void CheckpointsHoldExactlyTheVocabularysRowsAndLoadBack()
    {
        using var folder = new TempFolder();
        using var model = Model("flowhn");
        var device = model.Device;
        using var optimizer = new AdamW(device, model.Parameters().ToList());
        using (device.BeginScope())
        {
            device.Tape.Backward(Evaluation.Loss(device, model, Batch(5)));
            optimizer.Step(1e-2);
        }
        model.ZeroGrad();
        Checkpoint.Save(folder.Path, model, optimizer, new TrainState(1, 0, 1, 32, "bytes", new TrainOptions { Batch = 2, SeqLen = 16 }));
        string dir = Checkpoint.PathIn(folder.Path);

        var weights = Safetensors.Read(Path.Combine(dir, "model.safetensors"));
        var moments = Safetensors.Read(Path.Combine(dir, "optimizer.safetensors"));
        foreach (var name in new[] { "embed.weight", "lm_head.weight" })
        {
            var p = Weight(model, name);
            Assert.Equal([Vocab, 8], weights[name].Shape);
            Assert.Equal(p.Real.ToArray(), weights[name].Data);
            Assert.Equal([Vocab, 8], moments["exp_avg." + name].Shape);
            Assert.Equal(p.RealRowsOf(optimizer.StateOf(p).M).ToArray(), moments["exp_avg." + name].Data);
            Assert.Equal([Vocab, 8], moments["exp_avg_sq." + name].Shape);
        }

        using var loaded = Model("flowhn", seed: 99);
        using var loadedOptimizer = new AdamW(device, loaded.Parameters().ToList());
        Checkpoint.LoadInto(dir, loaded, loadedOptimizer);
        foreach (var p in model.Parameters())
        {
            var q = Weight(loaded, p.Name);
            Assert.Equal(p.ToArray(), q.ToArray()); // real rows equal, padding rows zero in both
            Assert.Equal(optimizer.StateOf(p).V.ToArray(), loadedOptimizer.StateOf(q).V.ToArray());
        }
    }

    [Fact]
    public void AVocabularyThatIsAMultipleOf64HasNoPaddingAndContiguousLogits()
    {
        using var model = Model("transformer", vocab: 128);
        Assert.Equal([128, 8], Weight(model, "lm_head.weight").Shape);
        var device = model.Device;
        using var scope = device.BeginScope();
        using var noGrad = new NoGradScope(device);
        var batch = Batch(6, vocab: 128);
        Assert.True(model.Forward(TokenIndex.FromHost(device, batch.Inputs, 2, 16), 2, 16).IsContiguous);
    }

    [Fact]
    public void ATokenPastTheVocabularyIsRefusedEvenThoughItsRowExists()
    {
        using var model = Model("transformer");
        var device = model.Device;
        using var scope = device.BeginScope();
        var error = Assert.Throws<ArgumentException>(() => model.Forward(TokenIndex.FromHost(device, [1, Vocab], 1, 2), 1, 2));
        Assert.Contains("outside the vocabulary of 50 tokens", error.Message);
    }

    [Fact]
    public void APaddedHeadCountsItsPaddingFlopsApartFromModelFlops()
    {
        using var model = Model("transformer");
        var device = model.Device;
        using var scope = device.BeginScope();
        using var noGrad = new NoGradScope(device);
        var batch = Batch(7);
        device.Runtime.Counters.Reset();
        model.Forward(TokenIndex.FromHost(device, batch.Inputs, 2, 16), 2, 16);
        Assert.Equal(2.0 * 32 * (Padded - Vocab) * 8, device.Runtime.Counters.PaddingFlops);
    }
}
