using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Autograd;

/// <summary>
/// Reverse-mode tape. Each differentiable op runs its forward kernel and records a closure that, given the
/// gradient of its output, accumulates the gradients of its inputs. Backward replays the closures in reverse,
/// each on the stream its forward ran on, so branches that ran concurrently forward run concurrently backward.
/// </summary>
public sealed class Tape
{
    private readonly ComputeDevice device;
    private readonly List<(Action Backward, DeviceStream Stream)> backwards = new();
    private GradientWatch? watch;
    private int depth;          // nesting of replays (a recomputed segment replays inside a backward)
    private int? replayPosition; // the outermost replay's current position, while it runs
    private readonly List<DeviceStream> replayStreams = new(); // the streams the watched backward has used so far

    internal Tape(Session session) => device = session.Runtime;

    public int Count => backwards.Count;

    /// <summary>
    /// Whether layers and blocks return their memory as soon as their backward is done (see
    /// <see cref="MemorySegment"/>); off keeps everything until the step ends (the ablation) and turns
    /// recomputation off too.
    /// </summary>
    public bool ReleaseSegments { get; set; } = true;

    /// <summary>
    /// Told which parameters each op uses from the forward on, and, in the backward that follows, when groups of
    /// them have their final gradients (a data-parallel run starts their all-reduce then). Null: nobody watches.
    /// </summary>
    public GradientWatch? Watch
    {
        get => watch;
        set
        {
            watch = value;
            watch?.Reset();
        }
    }

    /// <summary>Whether an op with these inputs must record its backward (every op asks, so a watch sees its parameters).</summary>
    public static bool ShouldRecord(Session session, params Tensor?[] inputs)
    {
        session.Tape.NoteUses(inputs);
        if (!session.GradEnabled) return false;
        foreach (var t in inputs)
            if (t is { RequiresGrad: true }) return true;
        return false;
    }

    public void Record(Action backward) => backwards.Add((backward, device.CurrentStream));

    private void NoteUses(Tensor?[] inputs)
    {
        if (watch is null) return;
        // In the forward, the position the op's backward is about to get; in the backward (a recomputed segment's
        // forward again), the position of the backward that is running.
        int position = replayPosition ?? backwards.Count;
        foreach (var t in inputs)
            if (t is Parameter p) watch.NoteUse(p, position);
    }

    /// <summary>
    /// Seeds d(loss)/d(loss) = 1 and runs every recorded backward in reverse, then clears the tape.
    /// Parameter gradients accumulate into their persistent buffers; zero them between steps.
    /// </summary>
    public void Backward(Tensor loss)
    {
        if (loss.Length != 1) throw new InvalidOperationException($"Backward needs a scalar loss, got shape {loss.ShapeString}.");
        if (!loss.RequiresGrad) throw new InvalidOperationException("The loss does not depend on any tensor that requires a gradient.");
        loss.Device.Kernels.Elementwise.Fill(Gradients.For(loss).View, 1f);
        Replay();
    }

    /// <summary>Backward from any output with a given output gradient (gradient checks use random ones).</summary>
    public void Backward(Tensor output, Tensor outputGrad)
    {
        if (!output.RequiresGrad) throw new InvalidOperationException("The output does not depend on any tensor that requires a gradient.");
        output.Device.Kernels.Elementwise.Copy(outputGrad.View, Gradients.For(output).View);
        Replay();
    }

    private void Replay() => ReplayFrom(0);

    /// <summary>
    /// Runs the backwards recorded from <paramref name="mark"/> on in reverse, then drops them. A backward may
    /// itself record and replay more (a recomputed segment); those sit past its own index and are gone again
    /// before the loop moves on.
    /// </summary>
    internal void ReplayFrom(int mark)
    {
        var current = device.CurrentStream;
        var told = depth == 0 ? watch : null; // only the outermost replay's positions are the forward's
        depth++;
        try
        {
            if (told is not null)
            {
                replayStreams.Add(current); // earlier micro-batches and the last step's zeroing were queued there
                told.BeginReplay();
            }
            for (int i = backwards.Count - 1; i >= mark; i--)
            {
                if (told is not null)
                {
                    replayPosition = i;
                    told.Before(i, replayStreams);
                }
                var stream = backwards[i].Stream;
                if (watch is not null && !replayStreams.Contains(stream)) replayStreams.Add(stream);
                device.CurrentStream = stream;
                backwards[i].Backward();
            }
            told?.EndReplay(replayStreams);
        }
        finally
        {
            depth--;
            if (told is not null)
            {
                replayPosition = null;
                replayStreams.Clear();
            }
            device.CurrentStream = current;
            TruncateTo(mark);
        }
    }

    internal void TruncateTo(int count)
    {
        if (count < backwards.Count) backwards.RemoveRange(count, backwards.Count - count);
    }

    /// <summary>Drops recorded backwards without running them (e.g. after an evaluation forward).</summary>
    public void Clear() => backwards.Clear();
}

/// <summary>Helpers for ops' backward closures.</summary>
public static class Gradients
{
    /// <summary>The gradient buffer of <paramref name="t"/>, created zeroed on first use (fan-out accumulates).</summary>
    public static Tensor For(Tensor t)
    {
        if (t.Grad is null)
        {
            t.Grad = Tensor.Zeros(t.Device, t.Shape);
            t.Grad.Block.Owner = t.Birth; // freed with t (see MemorySegment)
        }
        return t.Grad;
    }

    /// <summary>t.Grad += g (no-op when t needs no gradient).</summary>
    public static void Accumulate(Tensor t, Tensor g, float alpha = 1f)
    {
        if (!t.RequiresGrad) return;
        t.Device.Kernels.Elementwise.Accumulate(g.View, For(t).View, alpha);
    }
}

/// <summary>Turns gradient recording off until disposed (evaluation, generation, optimizer updates).</summary>
public sealed class NoGradScope : IDisposable
{
    private readonly Session session;
    private readonly bool previous;

    public NoGradScope(Session session)
    {
        this.session = session;
        previous = session.GradEnabled;
        session.GradEnabled = false;
    }

    public void Dispose() => session.GradEnabled = previous;
}
