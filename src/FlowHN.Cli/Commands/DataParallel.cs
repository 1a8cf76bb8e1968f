using FlowHN.Runtime;

namespace FlowHN.Cli.Commands;

/// <summary>
/// The process group of a run launched by MPI, opened once per process by <c>train</c>; the command line ends it
/// (MPI_Finalize) when the command returns, or aborts every rank when this one fails, so no rank is left waiting
/// in a collective for one that is gone.
/// </summary>
internal static class DataParallel
{
    public static ProcessGroup? Group { get; private set; }

    /// <summary>The group when MPI launched this process, else null (and no MPI library is loaded).</summary>
    public static ProcessGroup? Open() => Group ??= ProcessGroup.FromEnvironment();

    /// <summary>Rank 0 prints progress; the other ranks print only errors.</summary>
    public static CliConsole ConsoleFor(CliConsole console) =>
        Group is { IsRoot: false } ? console with { Out = TextWriter.Null } : console;

    public static void Finish()
    {
        Group?.Dispose();
        Group = null;
    }

    /// <summary>After this rank's error line: ends the whole job with <paramref name="exitCode"/> (MPI_Abort).</summary>
    public static void Abort(int exitCode)
    {
        if (Group is { Size: > 1 } group)
        {
            Console.Error.WriteLine($"error: rank {group.Rank} of {group.Size} failed; ending every rank of the job");
            group.Abort(exitCode);
        }
        Finish();
    }
}
