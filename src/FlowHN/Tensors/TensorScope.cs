using FlowHN.Runtime;

namespace FlowHN.Tensors;

/// <summary>Owns the device blocks allocated while it is the innermost scope; frees them all on dispose.</summary>
public sealed class TensorScope : IDisposable
{
    private readonly ComputeDevice device;
    private readonly List<DeviceBlock> blocks = new();
    private readonly int tapeMark;
    private bool disposed;

    internal TensorScope(ComputeDevice device)
    {
        this.device = device;
        tapeMark = device.Tape.Count;
    }

    internal void Track(DeviceBlock block) => blocks.Add(block);

    /// <summary>Returns the blocks that <paramref name="release"/> picks now, before the scope ends.</summary>
    internal void Release(Func<DeviceBlock, bool> release)
    {
        blocks.RemoveAll(block =>
        {
            if (!release(block)) return false;
            device.Allocator.Free(block);
            return true;
        });
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        device.EndScope(this);
        // Backwards recorded inside the scope refer to tensors freed below: they must never run.
        device.Tape.TruncateTo(tapeMark);
        foreach (var block in blocks) device.Allocator.Free(block);
        blocks.Clear();
    }
}
