using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Autograd;

/// <summary>
/// The execution context a model runs in: on one compute device, it owns the autograd tape, the grad mode, the
/// stack of tensor scopes (and with it the memory segments that return a layer's memory early) and its kernel
/// launchers. Sessions share nothing but their device: two on one device record on separate tapes, switch
/// gradients off separately and keep separate scopes. Tensors belong to the session they were made in, and so
/// does every op on them.
/// </summary>
public sealed class Session : TensorDevice
{
    private readonly Stack<TensorScope> scopes = new();
    private readonly bool ownsRuntime;
    private bool disposed;

    /// <summary>A session on a device that stays open after the session is disposed.</summary>
    public Session(ComputeDevice runtime) : this(runtime, ownsRuntime: false)
    {
    }

    private Session(ComputeDevice runtime, bool ownsRuntime) : base(runtime)
    {
        this.ownsRuntime = ownsRuntime;
        Tape = new Tape(this);
    }

    /// <summary>Opens a device (see <see cref="ComputeDevice.Create"/>) with a session that closes it when disposed.</summary>
    public static Session Create(DeviceOptions? options = null) => new(ComputeDevice.Create(options), ownsRuntime: true);

    public Tape Tape { get; }

    /// <summary>Whether operations record their backward on the tape (off inside a no-grad scope).</summary>
    public bool GradEnabled { get; internal set; } = true;

    /// <summary>
    /// Starts a scope: tensors allocated until it is disposed are returned to the allocator when it is.
    /// A training step runs inside one, so its activations and gradients are recycled every step.
    /// </summary>
    public TensorScope BeginScope()
    {
        int tapeMark = Tape.Count;
        var scope = new TensorScope(Runtime.Allocator, ending => EndScope(ending, tapeMark));
        scopes.Push(scope);
        return scope;
    }

    internal override TensorScope? CurrentScope => scopes.Count > 0 ? scopes.Peek() : null;

    private void EndScope(TensorScope scope, int tapeMark)
    {
        if (scopes.Count == 0 || scopes.Peek() != scope)
            throw new InvalidOperationException("Tensor scopes must be disposed in reverse order of creation.");
        scopes.Pop();
        // Backwards recorded inside the scope refer to tensors it is about to free: they must never run.
        Tape.TruncateTo(tapeMark);
    }

    /// <summary>The session a tensor was made in (every tensor is made in one: sessions are the only tensor devices).</summary>
    internal static Session Of(Tensor t) => (Session)t.Device;

    public override void Dispose()
    {
        if (disposed) return;
        disposed = true;
        if (!Runtime.IsDisposed) Runtime.Synchronize();
        base.Dispose();
        if (ownsRuntime) Runtime.Dispose();
    }
}
