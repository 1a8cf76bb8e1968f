using System.CommandLine;
using FlowHN.Models;

namespace FlowHN.Cli.Commands;

/// <summary>
/// <c>flowhn models</c>: every architecture and preset (and, for FlowHN, every split strategy and context)
/// with its parameter count and training FLOPs per token from the FLOP model.
/// </summary>
public static class ModelsCommand
{
    public static Command Create(CliConsole console)
    {
        var vocab = new Option<int>("--vocab") { Description = "Vocabulary size to count with (gpt2: 50257, bytes: 256).", DefaultValueFactory = _ => 50257 };
        var seq = new Option<int>("--seq") { Description = "Sequence length for the FLOP count.", DefaultValueFactory = _ => 1024 };
        var command = new Command("models", "List architectures and presets with parameter counts and training FLOPs per token.");
        command.Options.Add(vocab);
        command.Options.Add(seq);
        command.SetAction(result =>
        {
            int v = result.GetValue(vocab), l = result.GetValue(seq);
            var o = console.Out;
            o.WriteLine($"vocabulary {v}, sequence length {l}; FLOPs are forward + backward per trained token");
            o.WriteLine($"{"arch",-12} {"preset",-7} {"split",-12} {"dim",5} {"layers",6} {"heads",6} {"mlp",5} {"parameters",15} {"GFLOP/token",12}");
            foreach (string arch in Presets.Architectures)
                foreach (string preset in Presets.Names(arch))
                    foreach (var (config, split) in Variants(Presets.Get(arch, preset, v)))
                        o.WriteLine($"{arch,-12} {preset,-7} {split,-12} {config.Dim,5} {config.Layers,6} {$"{config.Heads}/{config.KvHeads}",6} " +
                                    $"{config.MlpHidden,5} {LanguageModel.CountParameters(config),15:N0} " +
                                    $"{LanguageModel.TrainingFlopsPerToken(config, l) / 1e9,12:0.0000}");
            return 0;
        });
        return command;
    }

    private static IEnumerable<(ModelConfig Config, string Split)> Variants(ModelConfig config)
    {
        if (config.Arch != "flowhn")
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
