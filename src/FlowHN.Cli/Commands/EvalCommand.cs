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
        var batch = CliOption.Create("--batch", "Sequences per batch.", 8, CliOption.Positive, "a positive number of sequences");
        var seq = CliOption.Create("--seq", "Tokens per sequence (0 = the training run's).", 0, v => v == 0 || v >= 2, "0 (the run's) or at least 2");
        var batches = CliOption.Create("--batches", "Validation batches to average.", 32, CliOption.Positive, "a positive count");
        var deviceOptions = new DeviceOptionSet();
        var command = new Command("eval", "Evaluate a checkpoint: validation loss and perplexity.");
        foreach (var option in new Option[] { run, data, batch, seq, batches }) command.Options.Add(option);
        deviceOptions.AddTo(command);
        command.SetAction(r =>
        {
            using var device = DeviceOptionSet.Open(deviceOptions.Read(r), console);
            using var loaded = RunModel.Load(device, r.GetValue(run)!);
            var source = DataSource.Open(r.GetValue(data)!, loaded.Tokenizer.Name, Path.Combine("runs", "data-cache"));
            if (source.VocabSize > loaded.Model.Config.VocabSize)
                throw new UserException($"The data in {source.Directory} uses {source.VocabSize} tokens but the model knows {loaded.Model.Config.VocabSize}. " +
                                        "Evaluate on data prepared with the run's tokenizer.");
            int seqLen = r.GetValue(seq) > 0 ? r.GetValue(seq) : loaded.State.Options.SeqLen;
            double loss = Evaluation.ValidationLoss(device, loaded.Model, source.Validation, r.GetValue(batch), seqLen, r.GetValue(batches));
            console.Out.WriteLine($"{loaded.Model.Config.Arch}/{loaded.Model.Config.Preset} at step {loaded.State.Step}: " +
                                  $"validation loss {loss:0.0000}, perplexity {Math.Exp(loss):0.00} ({loaded.Tokenizer.Name} tokens)");
            if (!double.IsFinite(loss))
                throw new UserException($"The checkpoint in {r.GetValue(run)} gives a loss of {loss}: its weights are not usable.",
                    exitCode: UserException.NonFiniteExitCode);
            return 0;
        });
        return command;
    }
}
