using System.Diagnostics;

namespace FlowHN.Runtime;

/// <summary>
/// Named points where the fault-injection tests make the process die as <c>kill -9</c> would, so a crash at an
/// exact moment (between the renames of a save) can be tested without timing. Set <c>FLOWHN_FAULT=kill:POINT</c>,
/// <c>throw:POINT</c> for an unexpected exception there (the last-resort handler's test), or <c>nan:step-N</c> for
/// a NaN loss at step N (<c>nan:eval-N</c>: a NaN validation loss in the evaluation at step N), or <c>hang:POINT</c>
/// for a process that stays alive but stops there for good (a hung rank: the collective timeouts' test).
/// Unset, a point costs one cached comparison.
/// </summary>
public static class FaultHooks
{
    private static readonly string? Fault = Environment.GetEnvironmentVariable("FLOWHN_FAULT");

    /// <summary>Whether <c>FLOWHN_FAULT=nan:POINT</c> asks for a non-finite value at this point.</summary>
    public static bool Nan(string point) => Fault is not null && Fault == "nan:" + point;

    public static void At(string point)
    {
        if (Fault is null || !Fault.EndsWith(":" + point, StringComparison.Ordinal)) return;
        if (Fault.StartsWith("throw:", StringComparison.Ordinal)) throw new InvalidOperationException($"injected fault at {point}");
        if (Fault.StartsWith("hang:", StringComparison.Ordinal)) Thread.Sleep(Timeout.Infinite);
        if (!Fault.StartsWith("kill:", StringComparison.Ordinal)) return; // nan: is asked for through Nan
        Console.Out.Flush();
        Process.GetCurrentProcess().Kill(); // SIGKILL: no finally blocks, no flushing, like a power cut
    }
}
