using System.CommandLine;
using FlowHN.Data;
using FlowHN.Inference;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Training;

namespace FlowHN.Cli.Commands;

/// <summary>
/// <c>flowhn eval</c>: zero-shot tasks (lambada, choice, ppl) on JSONL or text files, or, with no task, the
/// validation loss and both built-in sets.
/// </summary>
public static class EvalCommand
{
    private static readonly string[] Tasks = ["lambada", "choice", "ppl"];

    public static Command Create(CliConsole console)
    {
        var run = new Option<string>("--run") { Description = "Run folder holding checkpoint/ (the --out of flowhn train).", Required = true };
        var task = new Option<string?>("--task")
        {
            Description = "lambada (JSONL {\"text\"}), choice (JSONL {\"context\", \"choices\", \"gold\"}) or ppl (a .txt file or folder); " +
                          "none: validation loss plus the built-in cloze and next-sentence sets.",
        };
        var data = CliOption.Create("--data", "The task's file (or folder for ppl); with no task, the data whose validation split gives the loss.",
            "data/sample");
        var sets = CliOption.Create("--eval-sets", "Folder of the built-in sets (cloze.jsonl, next-sentence.jsonl) run when no task is given.",
            "data/eval");
        var batch = CliOption.Create("--batch", "Sequences per forward (items scored together; validation batches).", 8, CliOption.Positive, "a positive number of sequences");
        var seq = CliOption.Create("--seq", "Tokens per validation sequence (0 = the training run's).", 0, v => v == 0 || v >= 2, "0 (the run's) or at least 2");
        var batches = CliOption.Create("--batches", "Validation batches to average.", 32, CliOption.Positive, "a positive count");
        var maxLength = CliOption.Create("--max-length", "Tokens an item may span; longer contexts keep their end (0 = the trained length).", 0, CliOption.NonNegative, "0 (the trained length) or more");
        var output = new Option<string?>("--out") { Description = "Results JSON (a markdown table is written next to it); default RUN/eval/results.json." };
        var deviceOptions = new DeviceOptionSet();
        var command = new Command("eval", "Evaluate a checkpoint: zero-shot tasks, perplexity, validation loss.");
        foreach (var option in new Option[] { run, task, data, sets, batch, seq, batches, maxLength, output }) command.Options.Add(option);
        deviceOptions.AddTo(command);
        command.SetAction(r =>
        {
            string? taskName = r.GetValue(task)?.Trim().ToLowerInvariant();
            if (taskName is not null && !Tasks.Contains(taskName))
                throw new UserException($"Unknown --task '{r.GetValue(task)}'; use one of: {string.Join(", ", Tasks)} (or none for the default set).");
            if (taskName is not null && r.GetResult(data) is not { Implicit: false })
                throw new UserException($"--task {taskName} needs --data ({(taskName == "ppl" ? "a .txt file or folder" : "a JSONL file")}).");
            using var device = DeviceOptionSet.Open(deviceOptions.Read(r), console);
            string runDir = r.GetValue(run)!;
            using var loaded = RunModel.Load(device, runDir);
            var config = loaded.Model.Config;
            string model = $"{config.Arch}/{config.Preset}" + (config.Architecture.SplitsTokens ? $" ({SplitWords.Label(config)})" : "") +
                           $" at step {loaded.State.Step}";
            int length = r.GetValue(maxLength) > 0 ? r.GetValue(maxLength) : loaded.State.Options.SeqLen;
            var tasks = new EvalTasks(new Scorer(device, loaded.Model, length, r.GetValue(batch)), loaded.Tokenizer)
            {
                Progress = (name, done, total) => ShowProgress(console.Error, name, done, total),
            };
            var results = new List<TaskResult>();
            string path = r.GetValue(data)!;
            switch (taskName)
            {
                case "lambada": results.Add(tasks.Cloze(path)); break;
                case "choice": results.Add(tasks.Choice(path)); break;
                case "ppl": results.Add(tasks.Perplexity(path, length)); break;
                default:
                    var source = DataSource.Open(path, loaded.Tokenizer.Name, Path.Combine("runs", "data-cache"));
                    if (source.VocabSize > config.VocabSize)
                        throw new UserException($"The data in {source.Directory} uses {source.VocabSize} tokens but the model knows {config.VocabSize}. " +
                                                "Evaluate on data prepared with the run's tokenizer.");
                    int seqLen = r.GetValue(seq) > 0 ? r.GetValue(seq) : loaded.State.Options.SeqLen;
                    double loss = Evaluation.ValidationLoss(device, loaded.Model, source.Validation, r.GetValue(batch), seqLen, r.GetValue(batches));
                    console.Out.WriteLine($"{config.Arch}/{config.Preset} at step {loaded.State.Step}: " +
                                          $"validation loss {loss:0.0000}, perplexity {Math.Exp(loss):0.00} ({loaded.Tokenizer.Name} tokens)");
                    if (!double.IsFinite(loss))
                        throw new UserException($"The checkpoint in {runDir} gives a loss of {loss}: its weights are not usable.",
                            exitCode: UserException.NonFiniteExitCode);
                    results.Add(new TaskResult("validation", path, r.GetValue(batches),
                        new Dictionary<string, double> { ["loss"] = loss, ["ppl"] = Math.Exp(loss) }));
                    string folder = r.GetValue(sets)!;
                    string cloze = Path.Combine(folder, "cloze.jsonl"), choice = Path.Combine(folder, "next-sentence.jsonl");
                    bool setsFound = File.Exists(cloze) && File.Exists(choice);
                    if (!setsFound && r.GetResult(sets) is { Implicit: false })
                        throw new UserException($"The built-in sets are not in {folder} (cloze.jsonl, next-sentence.jsonl); pass --eval-sets FOLDER " +
                                                "or run tools/make-eval-sets.py.");
                    if (setsFound)
                    {
                        results.Add(tasks.Cloze(cloze));
                        results.Add(tasks.Choice(choice));
                    }
                    else // run from outside the repository: the loss alone, said once
                        console.Error.WriteLine($"note: no built-in sets in {Path.GetFullPath(folder)}; only the validation loss was computed " +
                                                "(pass --eval-sets FOLDER for the cloze and next-sentence sets).");
                    break;
            }
            string json = r.GetValue(output) ?? Path.Combine(runDir, "eval", "results.json");
            EvalReport.Write(json, model, loaded.State.Step, results);
            console.Out.Write(EvalReport.Markdown(model, results));
            console.Out.WriteLine($"results: {json} and {Path.ChangeExtension(json, ".md")}");
            return 0;
        });
        return command;
    }

    /// <summary>A one-line progress bar on the error stream, redrawn in place.</summary>
    private static void ShowProgress(TextWriter error, string task, int done, int total)
    {
        const int width = 30;
        int filled = total == 0 ? width : (int)((long)width * done / total);
        error.Write($"\r{task} [{new string('#', filled)}{new string('.', width - filled)}] {done}/{total}");
        if (done >= total) error.WriteLine();
        error.Flush();
    }
}
