namespace FlowHN.Cli;

/// <summary>
/// Where an unexpected exception's full trace goes: <c>crash.log</c> in the run folder of the command (once it
/// is known), else a file in the temporary folder.
/// </summary>
public static class CrashReport
{
    /// <summary>EX_SOFTWARE: an internal error, not the user's.</summary>
    public const int ExitCode = 70;

    /// <summary>Set by commands that write to a run folder.</summary>
    public static string? RunFolder { get; set; }

    public static string Write(Exception e)
    {
        string path = RunFolder is { } dir && Directory.Exists(dir)
            ? Path.Combine(dir, "crash.log")
            : Path.Combine(Path.GetTempPath(), $"flowhn-crash-{Environment.ProcessId}.log");
        try
        {
            File.AppendAllText(path, $"{DateTime.UtcNow:O} flowhn {string.Join(' ', Environment.GetCommandLineArgs().Skip(1))}\n{e}\n\n");
        }
        catch (Exception)
        {
            return "nowhere: the log could not be written either";
        }
        return path;
    }

    /// <summary>ENOSPC or EFBIG anywhere in the exception chain.</summary>
    public static bool IsDiskFull(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
            if (e is IOException io && ((io.HResult & 0xFFFF) is 28 or 27 || io.Message.Contains("No space left", StringComparison.Ordinal)))
                return true;
        return false;
    }
}
