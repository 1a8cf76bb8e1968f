using FlowHN.Autograd;
using FlowHN.Runtime;

namespace FlowHN.Models;

/// <summary>What the bench's breakdown reads from a profile after a timed forward and backward pass.</summary>
public interface IPassProfile
{
    BranchTimes Forward { get; }
    BranchTimes Backward { get; }

    void Reset();

    /// <summary>Adds the times recorded since the last call (waits for them); the backward's once one has run.</summary>
    void Collect(bool backward);
}

/// <summary>Profile marks that time the backward too.</summary>
internal static class PassMarks
{
    /// <summary>
    /// Records <paramref name="forward"/> now and, when a backward will run, <paramref name="backward"/> at the
    /// mirrored point of the tape (a forward start is a backward end), on the stream the tape replays it on.
    /// </summary>
    public static void Record(Session device, DeviceEvent forward, DeviceEvent backward)
    {
        forward.Record(device.Runtime.CurrentStream);
        if (device.GradEnabled) device.Tape.Record(() => backward.Record(device.Runtime.CurrentStream));
    }
}

/// <summary>
/// Times of the attention and SSM work of a pass (forward or backward), summed over blocks or layers:
/// each branch on its own, and both together (from the fork to the join; for sequential layers, their sum).
/// </summary>
public sealed record BranchTimes(double AttentionMs, double SsmMs, double ConcurrentMs)
{
    public static BranchTimes Zero { get; } = new(0, 0, 0);

    /// <summary>(t_attn + t_ssm) / t_both_concurrent: 2 is perfect overlap of equal branches, 1 none.</summary>
    public double OverlapEfficiency => (AttentionMs + SsmMs) / Math.Max(ConcurrentMs, 1e-12);

    /// <summary>|t_attn - t_ssm| / max: 0 when the split balances the branches exactly.</summary>
    public double Imbalance => Math.Abs(AttentionMs - SsmMs) / Math.Max(Math.Max(AttentionMs, SsmMs), 1e-12);

    public static BranchTimes operator +(BranchTimes a, BranchTimes b) =>
        new(a.AttentionMs + b.AttentionMs, a.SsmMs + b.SsmMs, a.ConcurrentMs + b.ConcurrentMs);
}
