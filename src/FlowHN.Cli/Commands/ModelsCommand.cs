using System.CommandLine;
using FlowHN.Models;

namespace FlowHN.Cli.Commands;

/// <summary><c>flowhn models</c>: every architecture and preset with its size and FLOPs per token.</summary>
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
            o.WriteLine($"vocabulary {v}, sequence length {l}");
            o.WriteLine($"{"arch",-12} {"preset",-8} {"dim",5} {"layers",6} {"heads",7} {"mlp",6} {"parameters",14} {"train GFLOP/token",18}");
            foreach (string arch in Presets.Architectures)
                foreach (string preset in Presets.Names(arch))
                {
                    var c = Presets.Get(arch, preset, v);
                    double flops = LanguageModel.TrainingFlopsPerToken(c, l);
                    o.WriteLine($"{arch,-12} {preset,-8} {c.Dim,5} {c.Layers,6} {$"{c.Heads}/{c.KvHeads}",7} {c.MlpHidden,6} " +
                                $"{LanguageModel.CountParameters(c),14:N0} {flops / 1e9,18:0.0000}");
                }
            return 0;
        });
        return command;
    }
}
