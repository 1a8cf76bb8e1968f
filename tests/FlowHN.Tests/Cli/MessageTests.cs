using System.CommandLine;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using FlowHN.Cli;
using FlowHN.Cli.Commands;
using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Training;

namespace FlowHN.Tests.Cli;

/// <summary>
/// Messages that point the user somewhere: eval refuses data its model cannot embed, and every option a message
/// names is one the user can pass.
/// </summary>
public partial class MessageTests
{
    private static (int Code, string Out, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = FlowHnCli.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    /// <summary>A single error line with exit code 2, naming <paramref name="expected"/>, and no stack trace.</summary>
    private static string AssertOneErrorLine((int Code, string Out, string Error) result, string expected)
    {
        Assert.True(result.Code == 2, $"exit {result.Code}: {result.Out}{result.Error}");
        var line = Assert.Single(result.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line);
        Assert.Contains(expected, line);
        Assert.DoesNotContain("   at ", result.Out + result.Error);
        return line;
    }

    /// <summary>A run folder holding an untrained tiny Transformer with <paramref name="vocab"/> tokens, trained "with" bytes.</summary>
    private static void SaveUntrainedRun(string runDir, int vocab)
    {
        var device = TestDevice.Cpu;
        using var model = LanguageModel.Create(device, Presets.Get("transformer", "tiny", vocab), seed: 0);
        using var optimizer = new AdamW(device, model.Parameters().ToList());
        Checkpoint.Save(runDir, model, optimizer, new TrainState(1, 0, 1, 32, "bytes", new TrainOptions { Batch = 2, SeqLen = 16 }));
    }

    [Fact]
    public void EvalRefusesDataWithMoreTokensThanTheModelKnows()
    {
        using var run = new TempFolder();
        using var cache = new TempFolder();
        // A model whose vocabulary (128) is smaller than its tokenizer's (bytes: 256): the validation tokens reach 255.
        SaveUntrainedRun(run.Path, vocab: 128);
        AssertOneErrorLine(Run("eval", "--device", "cpu", "--run", run.Path, "--data", RepoPaths.Sample, "--batch", "2", "--batches", "1"),
            "uses 256 tokens but the model knows 128");

        // A prepared folder whose meta.json claims a bigger vocabulary than the shards and the tokenizer hold.
        string prepared = DataSource.Open(RepoPaths.Sample, "bytes", cache.Path).Directory;
        string metaPath = Path.Combine(prepared, CorpusMeta.FileName);
        var meta = JsonNode.Parse(File.ReadAllText(metaPath))!.AsObject();
        string vocabKey = meta.Select(p => p.Key).Single(k => k.Equals("vocabSize", StringComparison.OrdinalIgnoreCase));
        meta[vocabKey] = 50257;
        File.WriteAllText(metaPath, meta.ToJsonString());
        AssertOneErrorLine(Run("eval", "--device", "cpu", "--run", run.Path, "--data", prepared, "--batch", "2", "--batches", "1"),
            "gives a vocabulary of 50257");
    }

    [GeneratedRegex(@"(?<![\w-])--[a-z][a-z0-9-]*")]
    private static partial Regex OptionToken();

    [GeneratedRegex(@"flowhn (\w+)")]
    private static partial Regex CommandMention();

    /// <summary>The options of each command, from its System.CommandLine definition.</summary>
    private static readonly Dictionary<string, HashSet<string>> OptionsOf = new[]
    {
        TrainCommand.Create(new CliConsole(TextWriter.Null, TextWriter.Null)),
        PrepareCommand.Create(new CliConsole(TextWriter.Null, TextWriter.Null)),
        EvalCommand.Create(new CliConsole(TextWriter.Null, TextWriter.Null)),
        GenerateCommand.Create(new CliConsole(TextWriter.Null, TextWriter.Null)),
    }.ToDictionary(c => c.Name, c => c.Options.SelectMany(o => o.Aliases.Append(o.Name)).ToHashSet());

    /// <summary>
    /// Every <c>--option</c> in the message is one of <paramref name="command"/>'s, or of a command the message
    /// names (`flowhn prepare --tokenizer ...`); the message names at least one.
    /// </summary>
    private static void AssertNamesOnlyRealOptions(string command, string message)
    {
        var allowed = new HashSet<string>(OptionsOf[command]);
        foreach (Match mention in CommandMention().Matches(message))
            if (OptionsOf.TryGetValue(mention.Groups[1].Value, out var more)) allowed.UnionWith(more);
        var named = OptionToken().Matches(message).Select(m => m.Value).ToList();
        Assert.True(named.Count > 0, $"no option named in: {message}");
        foreach (var option in named) Assert.True(allowed.Contains(option), $"{option} is not an option of flowhn {command}: {message}");
    }

    [Fact]
    public void TrainsDataFolderAndMemoryMessagesNameRealOptions()
    {
        using var cache = new TempFolder();
        using var run = new TempFolder();
        using var empty = new TempFolder();
        string prepared = DataSource.Open(RepoPaths.Sample, "bytes", cache.Path).Directory;
        string[] Train(params string[] more) =>
            ["train", "--device", "cpu", "--arch", "transformer", "--cache", cache.Path, "--out", run.Path, "--steps", "1", .. more];

        var messages = new[]
        {
            AssertOneErrorLine(Run(Train("--data", Path.Combine(empty.Path, "missing"))), "does not exist"),
            AssertOneErrorLine(Run(Train("--data", prepared, "--tokenizer", "gpt2")), "prepared with the 'bytes' tokenizer"),
            AssertOneErrorLine(Run(Train("--data", prepared, "--val", "no-such-book")), "--val"),
            // The step's predicted memory exceeds the limit: a batch that fits is suggested before anything runs.
            AssertOneErrorLine(Run(Train("--data", RepoPaths.Sample, "--memory-limit", "0.1", "--batch", "64", "--seq", "256")), "Use --batch"),
            // The weights alone exceed the limit: the allocator's message.
            AssertOneErrorLine(Run(Train("--data", RepoPaths.Sample, "--memory-limit", "0.001", "--batch", "64", "--seq", "256")), "Out of device memory"),
        };
        foreach (var message in messages) AssertNamesOnlyRealOptions("train", message);
        // Refused before training, the run left nothing that would refuse the suggested command with the same --out.
        Assert.False(File.Exists(Path.Combine(run.Path, MetricsLog.FileName)));
    }

    [Fact]
    public void EvalAndGenerateMessagesNameRealOptions()
    {
        using var run = new TempFolder();
        using var missing = new TempFolder();
        SaveUntrainedRun(run.Path, vocab: 256);
        string nowhere = Path.Combine(missing.Path, "nothing-here");
        string[] Eval(params string[] more) => ["eval", "--device", "cpu", "--batch", "2", "--batches", "1", .. more];
        string[] Generate(params string[] more) => ["generate", "--device", "cpu", "--tokens", "1", .. more];

        foreach (var message in new[]
        {
            AssertOneErrorLine(Run(Eval("--run", nowhere)), "does not exist"),
            AssertOneErrorLine(Run(Eval("--run", run.Path, "--task", "nonsense")), "Unknown --task"),
            AssertOneErrorLine(Run(Eval("--run", run.Path, "--task", "lambada")), "needs --data"),
            AssertOneErrorLine(Run(Eval("--run", run.Path, "--data", RepoPaths.Sample, "--eval-sets", nowhere)), "built-in sets"),
        })
            AssertNamesOnlyRealOptions("eval", message);

        foreach (var message in new[]
        {
            AssertOneErrorLine(Run(Generate("--run", nowhere)), "does not exist"),
            AssertOneErrorLine(Run(Generate("--run", run.Path, "--prompt-file", nowhere)), "does not exist"),
            AssertOneErrorLine(Run(Generate("--run", run.Path, "--max-context", "1")), "--max-context"),
        })
            AssertNamesOnlyRealOptions("generate", message);
    }
}
