namespace FlowHN.Runtime;

/// <summary>
/// An error the user can fix (bad option, missing file, no GPU, out of memory). The CLI prints only its
/// message, never a stack trace.
/// </summary>
public sealed class UserException(string message, Exception? inner = null) : Exception(message, inner);
