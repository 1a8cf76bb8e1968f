using FlowHN.Runtime;

namespace FlowHN.Training;

/// <summary>
/// The rule that makes a checkpoint good: its weights must give a finite loss. An update can leave finite but
/// exploded weights whose next forward is NaN, so a saved checkpoint waits in <c>checkpoint.next/</c> until a
/// loss computed from its weights (the next step's, an evaluation's, or a probe at the end) is finite, and is
/// only then promoted; a non-finite loss discards it. In a data-parallel run only rank 0 touches the files
/// (<paramref name="writesFiles"/>); the other ranks keep the same state.
/// </summary>
public sealed class CheckpointPromotion(string runDir, bool writesFiles = true)
{
    private int? pendingStep;

    /// <summary>Step of the promoted checkpoint, or null when the run has none.</summary>
    public int? LastGoodStep { get; set; }

    public bool HasPending => pendingStep is not null;

    public void Saved(int step) => pendingStep = step;

    /// <summary>Settles the pending checkpoint with a loss computed from its weights.</summary>
    public void Confirm(double lossFromPendingWeights)
    {
        if (pendingStep is not { } step) return;
        pendingStep = null;
        if (!writesFiles)
        {
            if (double.IsFinite(lossFromPendingWeights)) LastGoodStep = step;
            return;
        }
        if (double.IsFinite(lossFromPendingWeights))
        {
            Checkpoint.Promote(runDir);
            LastGoodStep = step;
        }
        else if (Directory.Exists(Checkpoint.NextIn(runDir)))
        {
            Directory.Delete(Checkpoint.NextIn(runDir), recursive: true);
        }
    }

    /// <summary>The sentence a NaN message ends with: where the last good checkpoint is, or that there is none.</summary>
    public string LastGoodSentence => LastGoodStep is { } s
        ? $"The last good checkpoint is {Checkpoint.PathIn(runDir)} (step {s})."
        : "There is no good checkpoint: no saved weights gave a finite loss.";

    public UserException NonFinite(string what) =>
        new($"{what}; training stopped. {LastGoodSentence} Try a lower --lr.", exitCode: UserException.NonFiniteExitCode);
}
