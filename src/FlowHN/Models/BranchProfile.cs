using FlowHN.Runtime;

namespace FlowHN.Models;

/// <summary>
/// Times the two branches of every parallel block with device events during a forward pass (for
/// <c>flowhn bench --breakdown</c>): attention, SSM, and both together from the fork to the join. With the
/// branches on one stream they run one after the other; on two streams each branch is timed from the fork to
/// its own end.
/// </summary>
public sealed class BranchProfile : IDisposable
{
    private sealed record BlockEvents(DeviceEvent Start, DeviceEvent AttentionDone, DeviceEvent SsmDone, DeviceEvent Joined, bool Concurrent);

    private readonly ComputeDevice device;
    private readonly List<BlockEvents> pool = new();
    private int used;

    public BranchProfile(ComputeDevice device) => this.device = device;

    public double AttentionMs { get; private set; }
    public double SsmMs { get; private set; }
    public double BothMs { get; private set; }

    internal int BeginBlock(bool concurrent)
    {
        if (used == pool.Count)
            pool.Add(new BlockEvents(device.CreateEvent(timing: true), device.CreateEvent(timing: true),
                device.CreateEvent(timing: true), device.CreateEvent(timing: true), concurrent));
        else pool[used] = pool[used] with { Concurrent = concurrent };
        pool[used].Start.Record(device.CurrentStream);
        return used++;
    }

    internal void AttentionDone(int block) => pool[block].AttentionDone.Record(device.CurrentStream);

    internal void SsmDone(int block) => pool[block].SsmDone.Record(device.CurrentStream);

    internal void Joined(int block) => pool[block].Joined.Record(device.CurrentStream);

    /// <summary>Adds the times of the blocks recorded since the last call (waits for them).</summary>
    public void Collect()
    {
        for (int i = 0; i < used; i++)
        {
            var e = pool[i];
            AttentionMs += DeviceEvent.ElapsedMilliseconds(e.Start, e.AttentionDone);
            SsmMs += DeviceEvent.ElapsedMilliseconds(e.Concurrent ? e.Start : e.AttentionDone, e.SsmDone);
            BothMs += DeviceEvent.ElapsedMilliseconds(e.Start, e.Joined);
        }
        used = 0;
    }

    public void Reset() => AttentionMs = SsmMs = BothMs = 0;

    public void Dispose()
    {
        foreach (var e in pool)
        {
            e.Start.Dispose();
            e.AttentionDone.Dispose();
            e.SsmDone.Dispose();
            e.Joined.Dispose();
        }
    }
}
