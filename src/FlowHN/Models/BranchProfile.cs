using FlowHN.Autograd;
using FlowHN.Runtime;

namespace FlowHN.Models;

/// <summary>
/// Times the two branches of every parallel block with device events, forward and backward (for
/// <c>flowhn bench --breakdown</c>): attention, SSM, and both together from the fork to the join. Each forward
/// mark also puts its mirror on the tape (a branch's forward start is its backward end), so the backward, which
/// replays the branches on their own streams, is timed the same way.
/// </summary>
public sealed class BranchProfile : IPassProfile, IDisposable
{
    private enum Mark { Start, AttentionStart, AttentionEnd, SsmStart, SsmEnd, End }

    private const int Marks = 6;
    private readonly Session device;
    private readonly List<DeviceEvent[]> pool = new(); // per block: the forward marks, then the backward marks
    private int used;

    public BranchProfile(Session device) => this.device = device;

    public BranchTimes Forward { get; private set; } = BranchTimes.Zero;
    public BranchTimes Backward { get; private set; } = BranchTimes.Zero;

    /// <summary>Called on the main stream before the fork; returns the block's handle for the other marks.</summary>
    internal int BeginBlock()
    {
        if (used == pool.Count) pool.Add(Enumerable.Range(0, 2 * Marks).Select(_ => device.Runtime.CreateEvent(timing: true)).ToArray());
        Record(used, Mark.Start);
        return used++;
    }

    internal void AttentionStart(int block) => Record(block, Mark.AttentionStart);
    internal void AttentionEnd(int block) => Record(block, Mark.AttentionEnd);
    internal void SsmStart(int block) => Record(block, Mark.SsmStart);
    internal void SsmEnd(int block) => Record(block, Mark.SsmEnd);

    /// <summary>Called on the main stream after the join.</summary>
    internal void EndBlock(int block) => Record(block, Mark.End);

    /// <summary>Records a forward mark now and, when a backward will run, the mirrored backward mark on the tape.</summary>
    private void Record(int block, Mark mark)
    {
        var events = pool[block];
        PassMarks.Record(device, events[(int)mark], events[Marks + (int)Mirror(mark)]);
    }

    /// <summary>The backward mark at the point where a forward mark's work is undone: a start becomes an end.</summary>
    private static Mark Mirror(Mark mark) => mark switch
    {
        Mark.Start => Mark.End,
        Mark.AttentionStart => Mark.AttentionEnd,
        Mark.AttentionEnd => Mark.AttentionStart,
        Mark.SsmStart => Mark.SsmEnd,
        Mark.SsmEnd => Mark.SsmStart,
        _ => Mark.Start,
    };

    /// <summary>
    /// Adds the times of the blocks recorded since the last call (waits for them). The backward marks count only
    /// once a backward has run over the blocks.
    /// </summary>
    public void Collect(bool backward)
    {
        for (int i = 0; i < used; i++)
        {
            Forward += Times(pool[i], 0);
            if (backward) Backward += Times(pool[i], Marks);
        }
        used = 0;
    }

    private static BranchTimes Times(DeviceEvent[] e, int offset)
    {
        double Ms(Mark from, Mark to) => DeviceEvent.ElapsedMilliseconds(e[offset + (int)from], e[offset + (int)to]);
        return new BranchTimes(Ms(Mark.AttentionStart, Mark.AttentionEnd), Ms(Mark.SsmStart, Mark.SsmEnd), Ms(Mark.Start, Mark.End));
    }

    public void Reset() => Forward = Backward = BranchTimes.Zero;

    public void Dispose()
    {
        foreach (var events in pool)
            foreach (var e in events)
                e.Dispose();
    }
}
