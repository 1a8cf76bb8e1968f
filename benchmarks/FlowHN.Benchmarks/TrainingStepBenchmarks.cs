using BenchmarkDotNet.Attributes;
using FlowHN.Autograd;
using FlowHN.Models;
using FlowHN.Tensors;
using FlowHN.Training;

namespace FlowHN.Benchmarks;

/// <summary>
/// One full training step per architecture, as the trainer takes it: upload a token batch, forward, cross-entropy,
/// backward, a clipped AdamW update and zeroed gradients, all inside a tensor scope. The paper's 135M models
/// (batch 8, length 1024, GPT-2 vocabulary) on CUDA; the tiny preset (batch 2, length 64, byte vocabulary) on the
/// CPU accelerator. Model FLOPs are the analytic training FLOPs per token times the tokens of the batch.
/// </summary>
public class TrainingStepBenchmarks : DeviceBenchmark
{
    private const double LearningRate = 1e-4;

    private LanguageModel? model;
    private AdamW? optimizer;
    private int[] inputs = [], targets = [];

    /// <summary>An architecture, for FlowHN followed by its split strategy and context.</summary>
    public static IEnumerable<string> Models() =>
        ["transformer", "mamba", "shm", "jamba", "hymba", "flowhn-none", "flowhn-fac-prefix"];

    /// <summary>preset/batch x length/vocabulary.</summary>
    public static IEnumerable<string> Shapes() => BenchmarkDevice.IsCuda ? ["135m/8x1024/50257"] : ["tiny/2x64/256"];

    [ParamsSource(nameof(Models))]
    public string Model { get; set; } = "transformer";

    [ParamsSource(nameof(Shapes))]
    public string Shape { get; set; } = "tiny/2x64/256";

    private string Preset => Shape.Split('/')[0];
    private int[] BatchBySeqLen => Dims(Shape.Split('/')[1]);
    private int Batch => BatchBySeqLen[0];
    private int SeqLen => BatchBySeqLen[1];
    private int Vocab => int.Parse(Shape.Split('/')[2]);

    private ModelConfig Config
    {
        get
        {
            string[] words = Model.Split('-');
            var config = Presets.Get(words[0], Preset, Vocab);
            if (words.Length > 1) config = config with { Split = SplitWords.ParseStrategy(words[1]) };
            if (words.Length > 2) config = config with { SplitContext = SplitWords.ParseContext(words[2]) };
            return config;
        }
    }

    public override double Tokens => (double)Batch * SeqLen;

    public override double Flops => LanguageModel.TrainingFlopsPerToken(Config, SeqLen) * Tokens;

    protected override void Prepare()
    {
        model = LanguageModel.Create(Device, Config, seed: 1);
        optimizer = new AdamW(Device, model.Parameters().ToList());
        inputs = RandomInts(Batch * SeqLen, Vocab);
        targets = RandomInts(Batch * SeqLen, Vocab);
        Console.WriteLine($"// {Model}/{Preset}: {model.ParameterCount:N0} parameters, {Flops / 1e9:0.###} GFLOP per step");
    }

    /// <summary>One optimizer step on the same random batch, then wait for the device.</summary>
    [Benchmark]
    public void Step()
    {
        using (Device.BeginScope())
        {
            var ids = TokenIndex.FromHost(Device, inputs, Batch, SeqLen);
            var loss = Ops.CrossEntropy(model!.Forward(ids, Batch, SeqLen), Tensor.FromArray(Device, targets, targets.Length));
            Device.Tape.Backward(loss);
            optimizer!.Step(LearningRate);
            model.ZeroGrad();
        }
        Device.Runtime.Synchronize();
    }
}
