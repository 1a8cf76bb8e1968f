using FlowHN.Autograd;
using FlowHN.Runtime;

namespace FlowHN.Nn;

/// <summary>What a segment of a forward pass computes, as an observer sees it.</summary>
public enum SegmentKind
{
    /// <summary>A decoder layer whose token mixer is attention (with its MLP).</summary>
    AttentionLayer,
    /// <summary>A decoder layer whose token mixer is Mamba (with its MLP).</summary>
    MambaLayer,
    /// <summary>A decoder layer with Hymba's attention and SSM heads (its heads are segments of their own).</summary>
    HymbaLayer,
    /// <summary>A parallel block's two branches together, from the fork to the join.</summary>
    Branches,
    /// <summary>Attention work inside a layer or block: a FlowHN attention branch, Hymba's attention heads.</summary>
    Attention,
    /// <summary>SSM work inside a layer or block: a FlowHN SSM branch, Hymba's SSM heads.</summary>
    Ssm,
}

/// <summary>
/// Watches segments of a pass (profiling, benchmarks): told where each begins and ends in the forward and, mirrored
/// on the tape, where its backward begins and ends. Every call comes on the stream the segment's work runs on, so
/// an observer can record device events there. Models only mark segments; what is measured lives with diagnostics.
/// </summary>
public interface ISegmentObserver
{
    /// <summary>A segment's forward begins; the handle names the segment in the other calls.</summary>
    int Begin(SegmentKind kind);

    void End(int handle);

    /// <summary>The segment's backward begins (the tape reached the point where its forward ended).</summary>
    void BeginBackward(int handle);

    /// <summary>The segment's backward ends (the tape reached the point where its forward began).</summary>
    void EndBackward(int handle);
}

/// <summary>Runs a piece of a forward pass as a segment an observer sees, forward and backward.</summary>
public static class Segments
{
    /// <summary>
    /// Runs <paramref name="forward"/> between the observer's begin and end marks. When a backward will run, each
    /// mark also puts its mirror on the tape (a forward begin is a backward end), where the backward replays it on
    /// the stream the mark was made on. Without an observer it only runs <paramref name="forward"/>.
    /// </summary>
    public static T Run<T>(Session device, ISegmentObserver? observer, SegmentKind kind, Func<T> forward)
    {
        if (observer is null) return forward();
        int handle = Begin(device, observer, kind);
        var output = forward();
        End(device, observer, handle);
        return output;
    }

    /// <summary>The begin mark alone, for a segment that opens and closes in different places (a fork and its join).</summary>
    public static int Begin(Session device, ISegmentObserver observer, SegmentKind kind)
    {
        int handle = observer.Begin(kind);
        if (device.GradEnabled) device.Tape.Record(() => observer.EndBackward(handle));
        return handle;
    }

    public static void End(Session device, ISegmentObserver observer, int handle)
    {
        observer.End(handle);
        if (device.GradEnabled) device.Tape.Record(() => observer.BeginBackward(handle));
    }
}
