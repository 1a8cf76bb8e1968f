namespace FlowHN.Runtime;

/// <summary>
/// An error the user can fix (bad option, missing file, no GPU, out of memory). The CLI prints only its
/// message, never a stack trace, and exits with <see cref="ExitCode"/> (2 unless said otherwise; 3 when the
/// loss stopped being finite).
/// </summary>
public sealed class UserException(string message, Exception? inner = null, int exitCode = 2) : Exception(message, inner)
{
    /// <summary>Exit code of a run the loss of which became NaN or infinite.</summary>
    public const int NonFiniteExitCode = 3;

    public int ExitCode { get; } = exitCode;
}
