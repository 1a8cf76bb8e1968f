using FlowHN.Runtime;

namespace FlowHN.Tensors;

/// <summary>Owns the device blocks allocated while it is the innermost scope; frees them all on dispose.</summary>
public sealed class TensorScope : IDisposable
{
    private readonly CachingAllocator allocator;
    private readonly Action<TensorScope> ending;
    private readonly List<DeviceBlock> blocks = new();
    private bool disposed;

    /// <param name="ending">Runs first on dispose: the owner of the scope stack takes the scope off it.</param>
    internal TensorScope(CachingAllocator allocator, Action<TensorScope> ending)
    {
        this.allocator = allocator;
        this.ending = ending;
    }

    internal void Track(DeviceBlock block) => blocks.Add(block);

    /// <summary>Returns the blocks that <paramref name="release"/> picks now, before the scope ends.</summary>
    internal void Release(Func<DeviceBlock, bool> release)
    {
        blocks.RemoveAll(block =>
        {
            if (!release(block)) return false;
            allocator.Free(block);
            return true;
        });
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        ending(this);
        foreach (var block in blocks) allocator.Free(block);
        blocks.Clear();
    }
}
