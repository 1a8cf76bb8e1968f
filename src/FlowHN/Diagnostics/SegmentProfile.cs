using FlowHN.Autograd;
using FlowHN.Nn;
using FlowHN.Runtime;

namespace FlowHN.Diagnostics;

/// <summary>
/// Times the segments a model marks with device events, forward and backward (for <c>flowhn bench --breakdown</c>),
/// and sums them as branch times: attention is FlowHN's attention branches, Hymba's attention heads and whole
/// attention layers (with their MLPs); SSM the SSM branches, Hymba's SSM heads and whole Mamba layers. "Both" is a
/// parallel block's fork-to-join time; work that runs one after the other (layers, Hymba's heads) adds its own.
/// A Hymba layer counts through its heads only.
/// </summary>
public sealed class SegmentProfile : ISegmentObserver, IDisposable
{
    private sealed class Marks(Session device) : IDisposable
    {
        public DeviceEvent Begin { get; } = device.Runtime.CreateEvent(timing: true);
        public DeviceEvent End { get; } = device.Runtime.CreateEvent(timing: true);
        public DeviceEvent BackwardBegin { get; } = device.Runtime.CreateEvent(timing: true);
        public DeviceEvent BackwardEnd { get; } = device.Runtime.CreateEvent(timing: true);
        public SegmentKind Kind { get; set; }

        /// <summary>Whether the segment lies between a fork and its join (its time is already in the block's).</summary>
        public bool InBranches { get; set; }

        public void Dispose()
        {
            Begin.Dispose();
            End.Dispose();
            BackwardBegin.Dispose();
            BackwardEnd.Dispose();
        }
    }

    private readonly Session device;
    private readonly List<Marks> pool = new(); // events are reused from one pass to the next
    private int used, openBranches;

    public SegmentProfile(Session device) => this.device = device;

    public BranchTimes Forward { get; private set; } = BranchTimes.Zero;
    public BranchTimes Backward { get; private set; } = BranchTimes.Zero;

    public int Begin(SegmentKind kind)
    {
        if (used == pool.Count) pool.Add(new Marks(device));
        var marks = pool[used];
        marks.Kind = kind;
        marks.InBranches = openBranches > 0;
        if (kind == SegmentKind.Branches) openBranches++;
        marks.Begin.Record(device.Runtime.CurrentStream);
        return used++;
    }

    public void End(int handle)
    {
        if (pool[handle].Kind == SegmentKind.Branches) openBranches--;
        pool[handle].End.Record(device.Runtime.CurrentStream);
    }

    public void BeginBackward(int handle) => pool[handle].BackwardBegin.Record(device.Runtime.CurrentStream);

    public void EndBackward(int handle) => pool[handle].BackwardEnd.Record(device.Runtime.CurrentStream);

    /// <summary>
    /// Adds the times of the segments marked since the last call (waits for them). The backward marks count only
    /// once a backward has run over the segments.
    /// </summary>
    public void Collect(bool backward)
    {
        for (int i = 0; i < used; i++)
        {
            var m = pool[i];
            Forward += Times(m, DeviceEvent.ElapsedMilliseconds(m.Begin, m.End));
            if (backward) Backward += Times(m, DeviceEvent.ElapsedMilliseconds(m.BackwardBegin, m.BackwardEnd));
        }
        used = 0;
    }

    /// <summary>One segment's time as branch times.</summary>
    private static BranchTimes Times(Marks m, double ms)
    {
        double alone = m.InBranches ? 0 : ms; // outside a fork, segments run one after the other
        return m.Kind switch
        {
            SegmentKind.Attention or SegmentKind.AttentionLayer => new BranchTimes(ms, 0, alone),
            SegmentKind.Ssm or SegmentKind.MambaLayer => new BranchTimes(0, ms, alone),
            SegmentKind.Branches => new BranchTimes(0, 0, ms),
            _ => BranchTimes.Zero,
        };
    }

    public void Reset() => Forward = Backward = BranchTimes.Zero;

    public void Dispose()
    {
        foreach (var m in pool) m.Dispose();
    }
}
