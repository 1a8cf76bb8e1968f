using System.CommandLine;
using FlowHN.Reports;
using FlowHN.Runtime;

namespace FlowHN.Cli.Commands;

/// <summary><c>flowhn plot RUN...</c>: loss, learning-rate and throughput charts of one or several runs.</summary>
public static class PlotCommand
{
    public static Command Create(CliConsole console)
    {
        var runs = new Argument<string[]>("RUN")
        {
            Description = "Run folders (the --out of flowhn train), each holding metrics.jsonl; several share the same axes.",
            Arity = ArgumentArity.OneOrMore,
        };
        var output = CliOption.Create("--out", "Folder for the charts (default: the run folder, or for several runs the folder that holds the first).", "");
        var noSvg = new Option<bool>("--no-svg") { Description = "Write only PNG files, no SVG copies." };
        var command = new Command("plot", "Chart training and validation loss (by step and by tokens seen), learning rate and tokens/s " +
                                          "of one or several runs as PNG and SVG.");
        command.Arguments.Add(runs);
        command.Options.Add(output);
        command.Options.Add(noSvg);
        command.SetAction(r =>
        {
            string[] dirs = r.GetValue(runs)!;
            foreach (string dir in dirs)
                if (!Directory.Exists(dir)) throw new UserException($"Run folder {dir} does not exist: pass the --out of a flowhn train run.");
            var metrics = dirs.Select(RunMetrics.Load).ToList();
            foreach (var dup in metrics.GroupBy(m => m.Name).Where(g => g.Count() > 1))
                throw new UserException($"Two runs are both named {dup.Key}: the legend names runs by folder, so pass folders with different names.");
            foreach (var m in metrics.Where(m => m.Train.Count == 0 && m.Eval.Count == 0))
                console.Error.WriteLine($"warning: {m.Name}/{RunMetrics.FileName} holds no training step or evaluation yet");
            string outDir = r.GetValue(output) is { Length: > 0 } o ? o
                : dirs.Length == 1 ? dirs[0] : Path.GetDirectoryName(Path.GetFullPath(Path.TrimEndingDirectorySeparator(dirs[0])))!;
            foreach (string path in RunCharts.WriteAll(metrics, outDir, svg: !r.GetValue(noSvg)))
                console.Out.WriteLine($"wrote {path}");
            return 0;
        });
        return command;
    }
}
