using System.CommandLine;
using FlowHN.Runtime;
using FlowHN.Training;

namespace FlowHN.Cli.Commands;

/// <summary><c>flowhn generate</c>: continue a prompt with a run's checkpoint.</summary>
public static class GenerateCommand
{
    public static Command Create(CliConsole console)
    {
        var run = new Option<string>("--run") { Description = "Run folder holding checkpoint/ (the --out of flowhn train).", Required = true };
        var prompt = new Option<string>("--prompt") { Description = "Text to continue.", DefaultValueFactory = _ => "The " };
        var tokens = new Option<int>("--tokens") { Description = "Tokens to generate.", DefaultValueFactory = _ => 200 };
        var temperature = new Option<double>("--temperature") { Description = "Sampling temperature (0 = greedy).", DefaultValueFactory = _ => 0.8 };
        var topK = new Option<int>("--top-k") { Description = "Sample among the k most likely tokens (0 = all).", DefaultValueFactory = _ => 40 };
        var seed = new Option<int>("--seed") { Description = "Seed of the sampler.", DefaultValueFactory = _ => 1 };
        var deviceOptions = new DeviceOptionSet();
        var command = new Command("generate", "Generate text from a trained checkpoint.");
        foreach (var option in new Option[] { run, prompt, tokens, temperature, topK, seed }) command.Options.Add(option);
        deviceOptions.AddTo(command);
        command.SetAction(r =>
        {
            using var device = DeviceOptionSet.Open(deviceOptions.Read(r), console);
            using var loaded = RunModel.Load(device, r.GetValue(run)!);
            string text = r.GetValue(prompt)!;
            var ids = loaded.Tokenizer.Encode(text);
            var generated = Evaluation.Generate(device, loaded.Model, ids, r.GetValue(tokens), r.GetValue(temperature), r.GetValue(topK),
                r.GetValue(seed));
            console.Out.WriteLine(text + loaded.Tokenizer.Decode(generated.ToList()));
            return 0;
        });
        return command;
    }
}
