using System.CommandLine;
using FlowHN.Data;
using FlowHN.Runtime;

namespace FlowHN.Cli.Commands;

/// <summary><c>flowhn prepare</c>: text files to binary token shards with a train/validation split by document.</summary>
public static class PrepareCommand
{
    public static Command Create(CliConsole console)
    {
        var input = new Option<string[]>("--input")
        {
            Description = "Text files or folders of .txt files; every file is one document.",
            Required = true,
            AllowMultipleArgumentsPerToken = true,
        };
        var tokenizer = new Option<string>("--tokenizer")
        {
            Description = "gpt2 (50,257-token BPE) or bytes (256 tokens, for tiny CPU runs).",
            DefaultValueFactory = _ => "gpt2",
        };
        var output = new Option<string>("--out") { Description = "Output folder for train.bin, val.bin and meta.json.", Required = true };
        var validation = new Option<string[]>("--val")
        {
            Description = "Document names (file names without .txt) held out for validation.",
            DefaultValueFactory = _ => CorpusPreparer.DefaultValidationBooks.ToArray(),
            AllowMultipleArgumentsPerToken = true,
        };
        var command = new Command("prepare", "Tokenize text into binary shards (train.bin, val.bin) with a split by document.");
        command.Options.Add(input);
        command.Options.Add(tokenizer);
        command.Options.Add(output);
        command.Options.Add(validation);
        command.SetAction(result =>
        {
            var summary = CorpusPreparer.Prepare(result.GetValue(input)!, Tokenizers.Create(result.GetValue(tokenizer)!),
                result.GetValue(output)!, result.GetValue(validation)!);
            foreach (var warning in summary.Warnings) console.Out.WriteLine(warning);
            console.Out.WriteLine(summary.ToString());
            return 0;
        });
        return command;
    }
}
