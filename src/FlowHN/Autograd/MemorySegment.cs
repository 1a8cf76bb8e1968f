using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Autograd;

/// <summary>
/// A stretch of a forward pass, such as one decoder layer or one FlowHN block, whose memory goes back to the
/// allocator as soon as its backward is done rather than when the step ends: the tensors created inside it,
/// their gradients, and the scratch its backward used. Nothing outside the segment needs them by then, because
/// the backward visits segments in reverse. Only the gradient of the segment's input stays (the segment before
/// it reads it).
/// <para>With recomputation (activation checkpointing) a segment keeps only its output: its forward runs
/// without gradients and everything else it made goes back at once; its backward runs the forward again, with
/// gradients, then backward through that, and releases it all.</para>
/// <para>Releases run on the stream the segment began on, after the point where a parallel block joins its
/// branch streams, so a freed block can only be handed out to work ordered after every kernel that used it:
/// later work on that stream, or branch work forked from it later.</para>
/// </summary>
public sealed class MemorySegment
{
    private readonly Session session;
    private readonly ComputeDevice device;
    private readonly DeviceStream stream;
    private readonly long start;
    private long end = long.MaxValue, backwardStart = long.MaxValue;

    private MemorySegment(Session session)
    {
        this.session = session;
        device = session.Runtime;
        stream = device.CurrentStream;
        start = device.Allocator.NextId;
    }

    /// <summary>
    /// Runs <paramref name="forward"/> (given the input and whether it is being recomputed) as a segment.
    /// Without a backward to come, a step scope, or <see cref="Tape.ReleaseSegments"/> it just runs it.
    /// </summary>
    public static Tensor Run(Session session, Tensor input, Func<Tensor, bool, Tensor> forward, bool recompute)
    {
        if (!session.GradEnabled || !session.Tape.ReleaseSegments || session.CurrentScope is null) return forward(input, false);
        var segment = new MemorySegment(session);
        return recompute ? segment.Recomputed(input, forward) : segment.Kept(input, forward);
    }

    /// <summary>The forward with its tape; the release is recorded first, so it runs last in the backward.</summary>
    private Tensor Kept(Tensor input, Func<Tensor, bool, Tensor> forward)
    {
        session.Tape.Record(Release);
        var output = forward(input, false);
        EndForward();
        // Recorded last, so it runs first in the backward: scratch from here on belongs to the segment.
        session.Tape.Record(() => backwardStart = device.Allocator.NextId);
        return output;
    }

    /// <summary>The forward without a tape, keeping only its output; the backward recomputes it.</summary>
    private Tensor Recomputed(Tensor input, Func<Tensor, bool, Tensor> forward)
    {
        Tensor output;
        using (new NoGradScope(session)) output = forward(input, false);
        EndForward();
        session.CurrentScope!.Release(block => block != output.Block && block.Owner >= start && block.Owner < end);
        output.RequiresGrad = true;
        session.Tape.Record(() =>
        {
            if (output.Grad is null) return;
            backwardStart = device.Allocator.NextId;
            int mark = session.Tape.Count;
            var again = forward(input, true);
            again.Grad = output.Grad;
            session.Tape.ReplayFrom(mark);
            Release();
        });
        return output;
    }

    private void EndForward()
    {
        if (device.CurrentStream != stream) throw new InvalidOperationException("A memory segment must end on the stream it began on.");
        end = device.Allocator.NextId;
    }

    private void Release()
    {
        if (device.CurrentStream != stream) throw new InvalidOperationException("A memory segment must be released on the stream it began on.");
        session.CurrentScope?.Release(block => (block.Owner >= start && block.Owner < end) || block.Owner >= backwardStart);
    }
}
