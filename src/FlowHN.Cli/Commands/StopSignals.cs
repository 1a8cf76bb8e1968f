using System.Runtime.InteropServices;
using FlowHN.Training;

namespace FlowHN.Cli.Commands;

/// <summary>
/// Ctrl+C (SIGINT) and SIGTERM (sent by timeout, docker, Slurm, Kubernetes) finish the current step, save a
/// checkpoint and exit with 130 or 143 (128 + the signal). A second signal ends the process at once.
/// </summary>
public sealed class StopSignals : IDisposable
{
    private readonly PosixSignalRegistration interrupt;
    private readonly PosixSignalRegistration terminate;
    private int stopping;

    public StopSignals(Trainer trainer, TextWriter console)
    {
        void OnSignal(PosixSignalContext context, int code, string name)
        {
            if (Interlocked.CompareExchange(ref stopping, 1, 0) != 0) return; // the second one: default handling ends the process
            context.Cancel = true;
            ExitCode = code;
            console.WriteLine($"{name}: stopping after this step and saving a checkpoint ({name} again aborts without saving)...");
            trainer.RequestStop();
        }
        interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => OnSignal(c, 130, "Ctrl+C"));
        terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => OnSignal(c, 143, "SIGTERM"));
    }

    /// <summary>Exit code of a run stopped by a signal.</summary>
    public int ExitCode { get; private set; } = 130;

    public void Dispose()
    {
        interrupt.Dispose();
        terminate.Dispose();
    }
}
