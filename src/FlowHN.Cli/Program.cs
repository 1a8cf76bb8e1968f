using FlowHN.Cli;

// A failure on another thread still ends in one line and a crash.log, not a bare stack trace.
AppDomain.CurrentDomain.UnhandledException += (_, e) =>
{
    if (e.ExceptionObject is not Exception ex) return;
    string log = CrashReport.Write(ex);
    Console.Error.WriteLine($"error: unexpected {ex.GetType().Name}: {ex.Message} (full trace in {log}; please report it)");
    Console.Error.Flush();
    Environment.Exit(CrashReport.ExitCode);
};
return FlowHnCli.Run(args, Console.Out, Console.Error);
