using FlowHN.Runtime;

namespace FlowHN.Autograd;

/// <summary>
/// A stretch of a forward pass, such as one decoder layer or one FlowHN block, whose memory goes back to the
/// allocator as soon as its backward is done rather than when the step ends: the tensors created inside it,
/// their gradients, and the scratch its backward used. Nothing outside the segment needs them by then, because
/// the backward visits segments in reverse. Only the gradient of the segment's input stays (the segment before
/// it reads it).
/// <para>The release runs on the stream the segment began on, after the point where a parallel block's backward
/// joins its branch streams, so a freed block can only be handed out to work ordered after every kernel that
/// used it: later work on that stream, or branch work forked from it later. A segment that ends on another stream
/// is refused.</para>
/// </summary>
public sealed class MemorySegment
{
    private readonly ComputeDevice device;
    private readonly DeviceStream stream;
    private readonly long start;
    private long end = long.MaxValue, backwardStart = long.MaxValue;

    private MemorySegment(ComputeDevice device)
    {
        this.device = device;
        stream = device.CurrentStream;
        start = device.Allocator.NextId;
        // Recorded first, so it runs last in the backward: after the segment's whole backward.
        device.Tape.Record(Release);
    }

    /// <summary>
    /// Starts a segment, or returns null when nothing would be released early: no backward will run, there is no
    /// step scope, or <see cref="Tape.ReleaseSegments"/> is off.
    /// </summary>
    public static MemorySegment? Begin(ComputeDevice device) =>
        device.GradEnabled && device.Tape.ReleaseSegments && device.CurrentScope is not null ? new MemorySegment(device) : null;

    /// <summary>Ends the segment's forward; call on the stream it began on.</summary>
    public void End()
    {
        if (device.CurrentStream != stream) throw new InvalidOperationException("A memory segment must end on the stream it began on.");
        end = device.Allocator.NextId;
        // Recorded last, so it runs first in the backward: scratch from here on belongs to the segment.
        device.Tape.Record(() => backwardStart = device.Allocator.NextId);
    }

    private void Release()
    {
        if (device.CurrentStream != stream) throw new InvalidOperationException("A memory segment must be released on the stream it began on.");
        device.CurrentScope?.Release(block =>
            (block.Owner >= start && block.Owner < end) || block.Owner >= backwardStart);
    }
}
