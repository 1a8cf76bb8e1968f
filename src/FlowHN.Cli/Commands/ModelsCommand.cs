using System.CommandLine;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Training;

namespace FlowHN.Cli.Commands;

/// <summary>
/// <c>flowhn models</c>: every architecture and preset (and, for FlowHN, every split strategy and context)
/// with its parameter count (from its module tree), training FLOPs per token (counted in a forward and backward)
/// and a training step's memory on a GPU (the allocator's books of a step), all measured on a shape-only device.
/// </summary>
public static class ModelsCommand
{
    public static Command Create(CliConsole console)
    {
        var vocab = CliOption.Create("--vocab", "Vocabulary size to count with (gpt2: 50257, bytes: 256).", 50257, v => v >= 2, "at least 2");
        var seq = CliOption.Create("--seq", "Sequence length for the FLOP count.", 1024, v => v >= 2, "at least 2 tokens");
        var batch = CliOption.Create("--batch", "Sequences per step for the memory estimate.", 8, CliOption.Positive, "a positive number of sequences");
        var command = new Command("models",
            "List architectures and presets with parameter counts, training FLOPs per token and the memory a training step needs on a GPU " +
            "(state: weights, gradients and AdamW moments; activations per token; the whole step at --batch x --seq, and with " +
            "--recompute; as requested by tensors, before the allocator's rounding).");
        command.Options.Add(vocab);
        command.Options.Add(seq);
        command.Options.Add(batch);
        command.SetAction(result =>
        {
            int v = result.GetValue(vocab), l = result.GetValue(seq), b = result.GetValue(batch);
            if (v < 1 || l < 1 || b < 1) throw new UserException("--vocab, --seq and --batch must be positive.");
            var o = console.Out;
            o.WriteLine($"vocabulary {v}, sequence length {l}, batch {b}; FLOPs are forward + backward per trained token; " +
                        "memory is a training step's on a GPU; all measured in a shape-only run of the model");
            o.WriteLine($"{"arch",-12} {"preset",-7} {"split",-12} {"dim",5} {"layers",6} {"heads",6} {"mlp",5} {"parameters",15} {"GFLOP/token",12} " +
                        $"{"state GiB",9} {"KiB/token",9} {"step GiB",9} {"recompute",9}");
            foreach (var arch in ArchitectureRegistry.All)
                foreach (var preset in arch.Presets)
                    foreach (var (config, split) in Variants(arch.Config(preset.Name, v)))
                    {
                        var memory = MemoryMeasure.Estimate(config, b, l, MemoryMeasure.Cuda);
                        var recomputed = MemoryMeasure.Estimate(config, b, l, MemoryMeasure.Cuda, ActivationMemory.Recomputed);
                        o.WriteLine($"{arch.Name,-12} {preset.Name,-7} {split,-12} {config.Dim,5} {config.Layers,6} {$"{config.Heads}/{config.KvHeads}",6} " +
                                    $"{config.MlpHidden,5} {LanguageModel.CountParameters(config),15:N0} " +
                                    $"{LanguageModel.TrainingFlopsPerToken(config, l) / 1e9,12:0.0000} {memory.StateBytes / Gib,9:0.00} " +
                                    $"{memory.ActivationBytesPerToken / 1024,9:0} {memory.StepBytes((long)b * l) / Gib,9:0.0} " +
                                    $"{recomputed.StepBytes((long)b * l) / Gib,9:0.0}");
                    }
            return 0;
        });
        return command;
    }

    private const double Gib = 1 << 30;

    private static IEnumerable<(ModelConfig Config, string Split)> Variants(ModelConfig config)
    {
        if (!config.Architecture.SplitsTokens)
        {
            yield return (config, "-");
            yield break;
        }
        foreach (var strategy in Enum.GetValues<SplitStrategy>())
            foreach (var context in strategy == SplitStrategy.None ? [SplitContext.Local] : Enum.GetValues<SplitContext>())
            {
                var variant = config with { Split = strategy, SplitContext = context };
                yield return (variant, SplitWords.Label(variant));
            }
    }
}
