using FlowHN.Autograd;
using FlowHN.Nn;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Models;

/// <summary>
/// A parallel block's two branches between the fork and the join. Each branch reads its own alias of the block's
/// input, made on the main stream before the fork, so the two backward passes accumulate into separate gradient
/// buffers that are summed on the main stream after the backward's join; the aliases are used without streams
/// too, so the sums happen in the same order and results are bitwise identical. With streams the branches run
/// concurrently (forward and backward); an observer sees the branches together (fork to join) and each branch.
/// </summary>
internal sealed class ForkedBranches
{
    private readonly Session device;
    private readonly BranchStreams? streams;
    private readonly ISegmentObserver? observer;
    private readonly Tensor firstInput, secondInput;
    private readonly int handle;

    private ForkedBranches(Session device, Tensor x, BranchStreams? streams, ISegmentObserver? observer)
    {
        this.device = device;
        this.streams = streams;
        this.observer = observer;
        firstInput = Ops.Reshape(x, x.Shape);
        secondInput = Ops.Reshape(x, x.Shape);
        handle = observer is null ? -1 : Segments.Begin(device, observer, SegmentKind.Branches);
        streams?.Fork();
    }

    /// <summary>Both branch streams wait for the main stream's work so far.</summary>
    public static ForkedBranches Fork(Session device, Tensor x, BranchStreams? streams, ISegmentObserver? observer) =>
        new(device, x, streams, observer);

    /// <summary>The first branch on its alias of the input (on the first stream).</summary>
    public Tensor? First(SegmentKind kind, Func<Tensor, Tensor?> branch) => Run(streams?.First, kind, branch, firstInput);

    /// <summary>The second branch on its alias of the input (on the second stream).</summary>
    public Tensor? Second(SegmentKind kind, Func<Tensor, Tensor?> branch) => Run(streams?.Second, kind, branch, secondInput);

    /// <summary>The main stream waits for both branches.</summary>
    public void Join()
    {
        streams?.Join();
        if (observer is not null) Segments.End(device, observer, handle);
    }

    private Tensor? Run(DeviceStream? stream, SegmentKind kind, Func<Tensor, Tensor?> branch, Tensor input)
    {
        using (stream is null ? null : device.Runtime.UseStream(stream))
            return Segments.Run(device, observer, kind, () => branch(input));
    }
}
