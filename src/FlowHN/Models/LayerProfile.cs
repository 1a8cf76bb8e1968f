using FlowHN.Nn;
using FlowHN.Runtime;

namespace FlowHN.Models;

/// <summary>
/// Times each decoder layer of a sequential stack with device events, forward and backward (for
/// <c>flowhn bench --breakdown</c>): for shm and jamba the summed time of the attention layers and of the Mamba
/// layers, each including its MLP; for Hymba, whose layers hold both, the attention heads and the SSM heads
/// (<see cref="IPartTimer"/>). Each forward mark also puts its mirror on the tape (a layer's forward start is its
/// backward end), so the backward is timed the same way.
/// </summary>
public sealed class LayerProfile : IPassProfile, IPartTimer, IDisposable
{
    private sealed record LayerEvents(DeviceEvent Start, DeviceEvent End, DeviceEvent BackwardStart, DeviceEvent BackwardEnd, MixerKind Kind);

    private readonly ComputeDevice device;
    private readonly List<LayerEvents> pool = new();
    private int used;

    public LayerProfile(ComputeDevice device) => this.device = device;

    public BranchTimes Forward { get; private set; } = BranchTimes.Zero;
    public BranchTimes Backward { get; private set; } = BranchTimes.Zero;

    internal int Begin(MixerKind kind)
    {
        if (used == pool.Count)
            pool.Add(new LayerEvents(device.CreateEvent(timing: true), device.CreateEvent(timing: true), device.CreateEvent(timing: true),
                device.CreateEvent(timing: true), kind));
        else pool[used] = pool[used] with { Kind = kind };
        PassMarks.Record(device, pool[used].Start, pool[used].BackwardEnd);
        return used++;
    }

    internal void End(int layer) => PassMarks.Record(device, pool[layer].End, pool[layer].BackwardStart);

    int IPartTimer.BeginPart(bool attention) => Begin(attention ? MixerKind.Attention : MixerKind.Mamba);

    void IPartTimer.EndPart(int part) => End(part);

    /// <summary>Adds the times recorded since the last call (waits for them); the backward's once a backward has run.</summary>
    public void Collect(bool backward)
    {
        for (int i = 0; i < used; i++)
        {
            var e = pool[i];
            Forward += Times(e.Kind, DeviceEvent.ElapsedMilliseconds(e.Start, e.End));
            if (backward) Backward += Times(e.Kind, DeviceEvent.ElapsedMilliseconds(e.BackwardStart, e.BackwardEnd));
        }
        used = 0;
    }

    /// <summary>
    /// One layer's (or part's) time as branch times: they run one after the other, so "both" is their sum. A
    /// Hymba layer counts through its parts.
    /// </summary>
    private static BranchTimes Times(MixerKind kind, double ms) => kind switch
    {
        MixerKind.Attention => new BranchTimes(ms, 0, ms),
        MixerKind.Mamba or MixerKind.Mamba2 => new BranchTimes(0, ms, ms),
        _ => BranchTimes.Zero,
    };

    public void Reset() => Forward = Backward = BranchTimes.Zero;

    public void Dispose()
    {
        foreach (var e in pool)
        {
            e.Start.Dispose();
            e.End.Dispose();
            e.BackwardStart.Dispose();
            e.BackwardEnd.Dispose();
        }
    }
}
