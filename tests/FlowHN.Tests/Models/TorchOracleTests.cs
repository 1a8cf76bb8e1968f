using System.Text.Json;
using System.Text.Json.Nodes;
using FlowHN.Autograd;
using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Tensors;
using FlowHN.Training;
using Xunit.Abstractions;

namespace FlowHN.Tests.Models;

/// <summary>
/// The models against an independent oracle: tools/make_torch_fixture.py builds the same tiny models in plain
/// PyTorch (float64, written from the paper and the README's weight names, not from this code) and commits
/// their weights, one batch's logits, loss and every weight's gradient, and the losses of three AdamW steps.
/// Each C# model is built from the fixture's config, loaded with its weights and compared element by element.
/// Weights are of order one (not the 0.02 init), so attention is far from uniform and every gradient matters.
/// </summary>
public class TorchOracleTests(ITestOutputHelper output)
{
    // Scaled errors (max |ours - torch| / max |torch| per tensor) and relative errors that float32 stays far under
    // (measured on both presets: logits 7e-7, gradients 7e-6, losses 8e-8, AdamW losses 2e-6 and gradient norms
    // 2e-5) and that a wrong op exceeds: an RMSNorm eps of 1e-5 instead of 1e-6 already fails every model.
    private const double LogitTolerance = 2e-5;
    private const double GradientTolerance = 1e-4;
    private const double LossTolerance = 1e-5;
    private const double AdamWLossTolerance = 2e-5;
    private const double AdamWNormTolerance = 2e-4;   // three steps amplify float32 noise in the later gradients

    private static readonly Lazy<Fixture> Reference = new(Fixture.Load);

    public static IEnumerable<object[]> Models() =>
        from model in new[] { "transformer", "mamba", "hymba", "flowhn_none", "flowhn_fac_prefix" }
        from device in new[] { "default", "wide" }
        select new object[] { model, device };

    [Fact]
    public void TheFixtureHoldsEveryModelTheTestsName()
    {
        var names = Models().Select(m => (string)m[0]).Distinct().OrderBy(n => n);
        Assert.Equal(names, Reference.Value.Configs.Keys.OrderBy(n => n));
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void LogitsLossAndEveryGradientMatchPyTorch(string name, string deviceName)
    {
        var device = TestDevice.Get(deviceName);
        var fixture = Reference.Value;
        using var model = fixture.Build(device, name);
        var errors = new List<Error>();
        using (device.BeginScope())
        {
            var batch = fixture.Batch;
            var ids = TokenIndex.FromHost(device, batch.Inputs, batch.BatchSize, batch.SeqLen);
            var logits = model.Forward(ids, batch.BatchSize, batch.SeqLen);
            errors.Add(Error.Of("logits", logits.ToArray(), fixture[$"{name}.logits"]));
            var loss = Ops.CrossEntropy(logits, Tensor.FromArray(device, batch.Targets, batch.Targets.Length));
            device.Tape.Backward(loss);
            errors.Add(Error.Of("loss", [loss.Item()], fixture[$"{name}.loss"]));
            foreach (var p in model.Parameters())
            {
                errors.Add(Error.Of(p.Name, p.RealRowsOf(p.Grad!).ToArray(), fixture[$"{name}.grad.{p.Name}"]));
                AssertPaddingIsZero(p, p.Grad!);
            }
        }
        model.ZeroGrad();
        Report(name, deviceName, errors);
        AssertWithin(errors[0], LogitTolerance);
        Assert.True(errors[1].MaxRel <= LossTolerance, $"loss: {errors[1]}");
        foreach (var e in errors.Skip(2)) AssertWithin(e, GradientTolerance);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void ThreeAdamWStepsMatchPyTorch(string name, string deviceName)
    {
        var device = TestDevice.Get(deviceName);
        var fixture = Reference.Value;
        var settings = fixture.AdamW;
        using var model = fixture.Build(device, name);
        using var optimizer = new AdamW(device, model.Parameters().ToList(), settings.Beta1, settings.Beta2, settings.Eps,
            settings.WeightDecay, settings.MaxGradNorm);
        // The training path: the trainer's step (the loss overwrites the logits with their gradient, the step clips
        // on the device), its losses and gradient norms logged on the device and read once.
        var step = new TrainingStep(device, model, optimizer);
        using var log = new DeviceStepLog(device, settings.Steps);
        for (int i = 0; i < settings.Steps; i++) step.Run(() => fixture.Batch, settings.LearningRate, log);
        var logged = log.Read();
        var losses = logged.Select(s => s.Loss).ToList();
        var norms = logged.Select(s => s.GradNorm).ToList();
        using (new NoGradScope(device))
        using (device.BeginScope())
            losses.Add(Evaluation.Loss(device, model, fixture.Batch).Item());
        foreach (var p in model.Parameters()) // no weight-decay drift or moment in the vocabulary padding
        {
            var (m, v) = optimizer.StateOf(p);
            AssertPaddingIsZero(p, p);
            AssertPaddingIsZero(p, m);
            AssertPaddingIsZero(p, v);
        }
        var lossError = Error.Of("adamw.losses", [.. losses], fixture[$"{name}.adamw.losses"]);
        var normError = Error.Of("adamw.grad_norms", [.. norms], fixture[$"{name}.adamw.grad_norms"]);
        Report(name, deviceName, [lossError, normError]);
        Assert.True(lossError.MaxRel <= AdamWLossTolerance, lossError.ToString());
        Assert.True(normError.MaxRel <= AdamWNormTolerance, normError.ToString());
    }

    private void Report(string name, string deviceName, IReadOnlyList<Error> errors)
    {
        var worst = errors.MaxBy(e => e.Scaled)!;
        output.WriteLine($"{name} on {deviceName}: {errors.Count} tensors, max abs {errors.Max(e => e.MaxAbs):E2}, " +
                         $"max rel {errors.Max(e => e.MaxRel):E2}, worst scaled {worst}");
        foreach (var e in errors) output.WriteLine("  " + e);
    }

    /// <summary>A vocabulary-padding row (the fixture's vocabulary of 16 is padded to 64) holds exact zeros.</summary>
    private static void AssertPaddingIsZero(Parameter p, Tensor t)
    {
        var values = t.ToArray();
        Assert.All(values[(int)p.RealLength..], v => Assert.Equal(0f, v));
    }

    private static void AssertWithin(Error e, double tolerance) =>
        Assert.True(e.Scaled <= tolerance, $"{e.What}: {e} exceeds {tolerance:E1}");

    /// <summary>
    /// Max |ours - torch|; max relative error over the elements above a thousandth of the tensor's largest (smaller
    /// ones are float32 rounding of cancelling sums); and max |ours - torch| / max |torch|.
    /// </summary>
    private sealed record Error(string What, double MaxAbs, double MaxRel, double Scaled)
    {
        public static Error Of(string what, float[] actual, float[] expected)
        {
            Assert.Equal(expected.Length, actual.Length);
            double scale = expected.Max(v => Math.Abs((double)v));
            double maxAbs = 0, maxRel = 0;
            for (int i = 0; i < actual.Length; i++)
            {
                Assert.True(float.IsFinite(actual[i]), $"{what}[{i}] is {actual[i]}");
                double diff = Math.Abs((double)actual[i] - expected[i]);
                maxAbs = Math.Max(maxAbs, diff);
                if (Math.Abs(expected[i]) > 1e-3 * scale) maxRel = Math.Max(maxRel, diff / Math.Abs(expected[i]));
            }
            return new Error(what, maxAbs, maxRel, scale > 0 ? maxAbs / scale : maxAbs);
        }

        public override string ToString() => $"{What}: max abs {MaxAbs:E2}, max rel {MaxRel:E2}, scaled {Scaled:E2}";
    }

    private sealed record AdamWSettings(double LearningRate, double Beta1, double Beta2, double Eps, double WeightDecay,
        double MaxGradNorm, int Steps);

    /// <summary>The committed fixture: tensors by name, the models' configs and the AdamW settings.</summary>
    private sealed class Fixture
    {
        private readonly Dictionary<string, Safetensors.Entry> tensors;

        private Fixture(Dictionary<string, Safetensors.Entry> tensors, IReadOnlyDictionary<string, string> metadata)
        {
            this.tensors = tensors;
            Configs = JsonNode.Parse(metadata["models"])!.AsObject()
                .ToDictionary(kv => kv.Key, kv => JsonSerializer.Deserialize<ModelConfig>(kv.Value!.ToJsonString())!);
            var a = JsonNode.Parse(metadata["adamw"])!;
            AdamW = new AdamWSettings((double)a["lr"]!, (double)a["beta1"]!, (double)a["beta2"]!, (double)a["eps"]!,
                (double)a["weight_decay"]!, (double)a["max_grad_norm"]!, (int)a["steps"]!);
            var inputs = this["tokens.inputs"].Select(v => (int)v).ToArray();
            var shape = tensors["tokens.inputs"].Shape;
            Batch = new TokenBatch(inputs, this["tokens.targets"].Select(v => (int)v).ToArray(), shape[0], shape[1]);
        }

        public IReadOnlyDictionary<string, ModelConfig> Configs { get; }
        public AdamWSettings AdamW { get; }
        public TokenBatch Batch { get; }

        public float[] this[string name] =>
            tensors.TryGetValue(name, out var e) ? e.Data : throw new KeyNotFoundException($"The fixture has no tensor '{name}'.");

        public static Fixture Load()
        {
            string path = Path.Combine(RepoPaths.Root, "tests", "FlowHN.Tests", "Fixtures", "torch_reference.safetensors");
            var tensors = Safetensors.Read(path, out var metadata);
            return new Fixture(tensors, metadata);
        }

        /// <summary>
        /// The model of the fixture's config with the fixture's weights. The model must have exactly the fixture's
        /// weight names and shapes (the README's tables), no more and no fewer: the shapes a checkpoint holds, so
        /// the embedding and LM head without their vocabulary padding.
        /// </summary>
        public LanguageModel Build(Session device, string name)
        {
            var model = LanguageModel.Create(device, Configs[name], seed: 1);
            string prefix = name + ".weight.";
            var expected = tensors.Keys.Where(k => k.StartsWith(prefix)).Select(k => k[prefix.Length..]).Order().ToList();
            Assert.Equal(expected, model.Parameters().Select(p => p.Name).Order().ToList());
            foreach (var p in model.Parameters())
            {
                var e = tensors[prefix + p.Name];
                Assert.Equal(e.Shape, p.Real.Shape);
                p.Real.CopyFrom(e.Data);
            }
            return model;
        }
    }
}
