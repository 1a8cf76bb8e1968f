using BenchmarkDotNet.Attributes;
using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Training;

namespace FlowHN.Benchmarks;

/// <summary>
/// One full training step per architecture: the trainer's own <see cref="TrainingStep"/> (upload a token batch,
/// forward, cross-entropy overwriting the logits with their gradient, backward, a clipped AdamW update, zeroed
/// gradients), so it measures the time and memory of a <c>flowhn train</c> step. The paper's 135M models
/// (batch 8, length 1024, GPT-2 vocabulary) on CUDA; the tiny preset (batch 2, length 64, byte vocabulary) on the
/// CPU accelerator. Model FLOPs are the analytic training FLOPs per token times the tokens of the batch.
/// </summary>
public class TrainingStepBenchmarks : DeviceBenchmark
{
    private const double LearningRate = 1e-4;

    private LanguageModel? model;
    private AdamW? optimizer;
    private TrainingStep? step;
    private TokenBatch? batch;

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
        step = new TrainingStep(Device, model, optimizer);
        batch = new TokenBatch(RandomInts(Batch * SeqLen, Vocab), RandomInts(Batch * SeqLen, Vocab), Batch, SeqLen);
        Console.WriteLine($"// {Model}/{Preset}: {model.ParameterCount:N0} parameters, {Flops / 1e9:0.###} GFLOP per step");
    }

    public override void Release()
    {
        optimizer?.Dispose();
        model?.Dispose();
        (optimizer, model, step) = (null, null, null);
    }

    /// <summary>One optimizer step on the same random batch, then wait for the device.</summary>
    [Benchmark]
    public void Step()
    {
        step!.Run(() => batch!, LearningRate);
        Device.Runtime.Synchronize();
    }
}
