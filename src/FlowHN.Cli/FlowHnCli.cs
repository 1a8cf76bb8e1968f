using System.CommandLine;
using FlowHN.Cli.Commands;
using FlowHN.Runtime;

namespace FlowHN.Cli;

/// <summary>The <c>flowhn</c> command line: thin wiring from options to the library.</summary>
public static class FlowHnCli
{
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        var root = new RootCommand(
            "FlowHN.NET: train and measure hybrid attention + state-space language models (FlowHN and its baselines) " +
            "on CUDA GPUs through ILGPU, or on the CPU accelerator when no GPU is present.");
        var console = new CliConsole(output, error);
        root.Subcommands.Add(TrainCommand.Create(console));
        root.Subcommands.Add(PrepareCommand.Create(console));
        root.Subcommands.Add(EvalCommand.Create(console));
        root.Subcommands.Add(GenerateCommand.Create(console));
        root.Subcommands.Add(BenchCommand.Create(console));
        root.Subcommands.Add(ModelsCommand.Create(console));
        root.Subcommands.Add(InfoCommand.Create(console));
        root.Subcommands.Add(CheckCommand.Create(console));
        root.Subcommands.Add(PtxReportCommand.Create(console));
        root.Subcommands.Add(PlotCommand.Create(console));
        CrashReport.RunFolder = null; // set by a command once it knows its run folder
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0 && !args.Contains("--help") && !args.Contains("-h"))
        {
            // One line per problem, naming the option; --help shows the rest.
            foreach (var e in parse.Errors) error.WriteLine($"error: {e.Message}");
            return 2;
        }
        try
        {
            // No built-in Ctrl+C handling: train saves a checkpoint on Ctrl+C itself.
            int code = parse.Invoke(new InvocationConfiguration
            {
                Output = output, Error = error, EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null,
            });
            DataParallel.Finish();
            return code;
        }
        catch (UserException e)
        {
            error.WriteLine($"error: {e.Message}");
            return Failed(e.ExitCode, error);
        }
        catch (Exception e) when (CrashReport.IsDiskFull(e))
        {
            error.WriteLine($"error: the disk is full ({e.Message}). Free space and run the command again" +
                            (CrashReport.RunFolder is { } run ? $" (flowhn train --resume --out {run} continues the run)." : "."));
            return Failed(2, error);
        }
        catch (Exception e)
        {
            // Last resort: one line here, the full trace in crash.log; the checkpoint is not touched.
            string log = CrashReport.Write(e);
            error.WriteLine($"error: unexpected {e.GetType().Name}: {e.Message} (full trace in {log}; please report it)");
            return Failed(CrashReport.ExitCode, error);
        }
    }

    /// <summary>In a data-parallel run one failing rank ends them all (the others would wait for it forever).</summary>
    private static int Failed(int exitCode, TextWriter error)
    {
        error.Flush();
        DataParallel.Abort(exitCode);
        return exitCode;
    }
}

/// <summary>Where commands write, so tests can capture it.</summary>
public sealed record CliConsole(TextWriter Out, TextWriter Error);
