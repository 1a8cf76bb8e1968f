using System.Runtime.ExceptionServices;
using FlowHN.Autograd;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Training;

/// <summary>
/// Writes one batch's inputs and targets (row-major, [batch, seqLen] each) on the prefetch thread and returns the
/// source's position after it: what a checkpoint saves so that a resumed run draws the same next batch.
/// </summary>
public delegate ulong BatchFiller(Span<int> inputs, Span<int> targets);

/// <summary>
/// Prepares token batches one ahead on a worker thread, so a training step never waits for the host: the worker
/// draws the next batch, builds its id plan (<see cref="TokenIndex.WritePlan"/>, the sort included) and writes it
/// into one of two page-locked buffers while the current step runs; <see cref="Next"/> queues the buffer's copy
/// on the current stream and returns at once. A buffer goes back to the worker only once its copy is done
/// (<see cref="PinnedHostBuffer.WaitUntilCopied"/>), so nothing overwrites it while the device may still read it.
/// Batches come in exactly the order the filler draws them; an exception on the worker is thrown again, with its
/// type and message, by the <see cref="Next"/> that would have returned that batch. Dispose stops and joins the
/// worker (also on an early stop or an error) and waits for any copy in flight.
/// </summary>
public sealed class BatchPrefetcher : IDisposable
{
    private sealed class Slot(PinnedHostBuffer buffer)
    {
        public PinnedHostBuffer Buffer { get; } = buffer;
        public TokenPlanLayout Layout;
        public ulong PositionAfter;
        public ExceptionDispatchInfo? Error;
    }

    private readonly Session device;
    private readonly int batch;
    private readonly int seqLen;
    private readonly BatchFiller fill;
    private readonly Slot[] slots;
    private readonly SemaphoreSlim free;
    private readonly SemaphoreSlim ready = new(0);
    private readonly CancellationTokenSource stop = new();
    private readonly Thread worker;
    private long taken;
    private Slot? inUse; // handed out by the last Next; its copy may be in flight
    private bool disposed;

    /// <param name="position">The source's position before the first batch (what <see cref="Position"/> reports until then).</param>
    public BatchPrefetcher(Session device, int batch, int seqLen, BatchFiller fill, ulong position = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(seqLen, 1);
        this.device = device;
        this.batch = batch;
        this.seqLen = seqLen;
        this.fill = fill;
        Position = position;
        int capacity = TokenPlanLayout.Capacity(checked(batch * seqLen));
        slots = [new Slot(new PinnedHostBuffer(device.Runtime, capacity)), new Slot(new PinnedHostBuffer(device.Runtime, capacity))];
        free = new SemaphoreSlim(slots.Length);
        worker = new Thread(Work) { IsBackground = true, Name = "FlowHN batch prefetch" };
        worker.Start();
    }

    /// <summary>Whether the worker thread is still alive (false once disposed: nothing is left running).</summary>
    internal bool WorkerAlive => worker.IsAlive;

    /// <summary>The source's position after the last batch <see cref="Next"/> returned: where a resumed run continues.</summary>
    public ulong Position { get; private set; }

    /// <summary>
    /// The next batch on the device, in the caller's current tensor scope: its copy is queued on the current
    /// stream (no host wait). Blocks only while the worker has not finished preparing it.
    /// </summary>
    public TokenIndex Next()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (inUse is not null)
        {
            inUse.Buffer.WaitUntilCopied(); // queued a step ago: done unless the host ran a step ahead of the device
            inUse = null;
            free.Release();
        }
        ready.Wait();
        var slot = slots[taken % slots.Length];
        if (slot.Error is { } error)
        {
            ready.Release(); // a later call fails the same way
            error.Throw();
        }
        taken++;
        inUse = slot;
        Position = slot.PositionAfter;
        return TokenIndex.FromPinned(device, slot.Buffer, slot.Layout, batch, seqLen);
    }

    private void Work()
    {
        var inputs = new int[batch * seqLen];
        var targets = new int[inputs.Length];
        try
        {
            for (long n = 0; ; n++)
            {
                free.Wait(stop.Token);
                var slot = slots[n % slots.Length];
                try
                {
                    slot.PositionAfter = fill(inputs, targets);
                    slot.Layout = TokenIndex.WritePlan(inputs, targets, slot.Buffer.Span);
                }
                catch (Exception e)
                {
                    slot.Error = ExceptionDispatchInfo.Capture(e);
                    ready.Release();
                    return;
                }
                ready.Release();
            }
        }
        catch (OperationCanceledException)
        {
            // Disposed: stop drawing.
        }
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        stop.Cancel();
        worker.Join();
        foreach (var slot in slots) slot.Buffer.Dispose();
        free.Dispose();
        ready.Dispose();
        stop.Dispose();
    }
}
