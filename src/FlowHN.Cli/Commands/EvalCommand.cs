using System.CommandLine;
using FlowHN.Data;
using FlowHN.Runtime;
using FlowHN.Training;

namespace FlowHN.Cli.Commands;

/// <summary><c>flowhn eval</c>: validation loss and perplexity of a run's checkpoint.</summary>
public static class EvalCommand
{
    public static Command Create(CliConsole console)
    {
        var run = new Option<string>("--run") { Description = "Run folder holding checkpoint/ (the --out of flowhn train).", Required = true };
        var data = new Option<string>("--data") { Description = "Data to evaluate on (its validation split).", DefaultValueFactory = _ => "data/sample" };
        var batch = new Option<int>("--batch") { Description = "Sequences per batch.", DefaultValueFactory = _ => 8 };
        var seq = new Option<int>("--seq") { Description = "Tokens per sequence (default: the training run's).", DefaultValueFactory = _ => 0 };
        var batches = new Option<int>("--batches") { Description = "Validation batches to average.", DefaultValueFactory = _ => 32 };
        var deviceOptions = new DeviceOptionSet();
        var command = new Command("eval", "Evaluate a checkpoint: validation loss and perplexity.");
        foreach (var option in new Option[] { run, data, batch, seq, batches }) command.Options.Add(option);
        deviceOptions.AddTo(command);
        command.SetAction(r =>
        {
            using var device = DeviceOptionSet.Open(deviceOptions.Read(r), console);
            using var loaded = RunModel.Load(device, r.GetValue(run)!);
            var source = DataSource.Open(r.GetValue(data)!, loaded.Tokenizer.Name, Path.Combine("runs", "data-cache"));
            int seqLen = r.GetValue(seq) > 0 ? r.GetValue(seq) : loaded.State.Options.SeqLen;
            double loss = Evaluation.ValidationLoss(device, loaded.Model, source.Validation, r.GetValue(batch), seqLen, r.GetValue(batches));
            console.Out.WriteLine($"{loaded.Model.Config.Arch}/{loaded.Model.Config.Preset} at step {loaded.State.Step}: " +
                                  $"validation loss {loss:0.0000}, perplexity {Math.Exp(loss):0.00} ({loaded.Tokenizer.Name} tokens)");
            return 0;
        });
        return command;
    }
}
