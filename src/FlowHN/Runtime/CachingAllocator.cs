using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Runtime;

/// <summary>
/// One device allocation handed out by the <see cref="CachingAllocator"/>. Every tensor element is 4 bytes
/// (float32 or int32), so blocks are float buffers and integer tensors view them through a cast.
/// </summary>
public sealed class DeviceBlock
{
    internal DeviceBlock(MemoryBuffer1D<float, Stride1D.Dense> buffer, long bucketElements, long requestedElements, long id,
        bool meta = false)
    {
        Buffer = buffer;
        IsMeta = meta;
        BucketElements = bucketElements;
        RequestedElements = requestedElements;
        Id = id;
        Owner = id;
    }

    internal MemoryBuffer1D<float, Stride1D.Dense> Buffer { get; }

    /// <summary>A block of a shape-only device: its view has the block's length but no memory behind it.</summary>
    public bool IsMeta { get; }
    public long BucketElements { get; }
    /// <summary>What was asked for (the bucket may be larger).</summary>
    public long RequestedElements { get; }
    public bool IsFreed { get; internal set; }

    /// <summary>Allocation order: ids grow with every block and every tensor created.</summary>
    public long Id { get; }

    /// <summary>
    /// The id of what this block's memory belongs to: itself, or for a gradient buffer the tensor it is the
    /// gradient of, so memory can be returned by when it was made (a layer's memory when its backward is done).
    /// </summary>
    public long Owner { get; internal set; }

    public ArrayView<float> View
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsFreed, this);
            // A meta block's view spans its bucket over a one-element placeholder: sub-views of it are shaped
            // like the real ones, and nothing ever reads or writes through it.
            return IsMeta ? new ArrayView<float>(Buffer, 0, BucketElements) : Buffer.View;
        }
    }
}

/// <summary>
/// Serves device memory from free lists keyed by a rounded size, so a training step that repeats the same
/// shapes reuses the same blocks and never calls the driver after the first step. Counters make that testable.
/// Blocks are reused in stream order: a block freed after work was queued on one stream must not be handed to
/// another stream before that work is done (callers that use several streams join them before freeing).
/// </summary>
public sealed class CachingAllocator : IDisposable
{
    private const long SmallestBucket = 64;             // 256 bytes, the CUDA allocation granularity
    private const long LargeBucketStep = 1L << 20;      // above 4 MiB, round to 4 MiB steps
    private readonly Accelerator accelerator;
    private readonly Dictionary<long, Stack<MemoryBuffer1D<float, Stride1D.Dense>>> free = new();
    private long nextId;

    private readonly MemoryBuffer1D<float, Stride1D.Dense>? placeholder;

    /// <param name="meta">Keep the books only: every block shares one tiny placeholder buffer (see ComputeDevice.IsMeta).</param>
    public CachingAllocator(Accelerator accelerator, long limitBytes = 0, bool meta = false)
    {
        this.accelerator = accelerator;
        LimitBytes = meta ? 0 : limitBytes; // bookkeeping has no limit: a step is measured whole
        if (meta) placeholder = accelerator.Allocate1D<float>(1);
    }

    /// <summary>Whether blocks are bookkeeping only (a shape-only device).</summary>
    public bool IsMeta => placeholder is not null;

    /// <summary>Most device memory this allocator may reserve (0 = whatever the device has).</summary>
    public long LimitBytes { get; }

    public long BytesInUse { get; private set; }
    public long PeakBytesInUse { get; private set; }
    public long BytesReserved { get; private set; }
    public long DriverAllocations { get; private set; }
    public long CacheHits { get; private set; }
    /// <summary>Blocks returned so far. Inside a step only the main stream returns blocks, at the step's end or
    /// once a layer's backward is done: with branches on two
    /// streams, a block freed while a branch may still use it could be handed to the other stream.</summary>
    public long Frees { get; private set; }
    /// <summary>The id the next block or tensor gets; ids only grow.</summary>
    public long NextId => nextId;

    /// <summary>Takes an id without allocating (views: tensors that share another tensor's block).</summary>
    internal long TakeId() => nextId++;

    /// <summary>Bytes asked for by live blocks, without bucket rounding (what the memory measurement reports).</summary>
    public long RequestedBytesInUse { get; private set; }
    public long PeakRequestedBytes { get; private set; }

    /// <summary>Rounds a request up to its bucket: powers of two up to 4 MiB, then 4 MiB steps.</summary>
    public static long BucketFor(long elements)
    {
        if (elements <= SmallestBucket) return SmallestBucket;
        if (elements <= LargeBucketStep) return (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)elements);
        return (elements + LargeBucketStep - 1) / LargeBucketStep * LargeBucketStep;
    }

    public DeviceBlock Allocate(long elements) => Allocate(elements, BucketFor(elements));

    /// <summary>
    /// A block rounded only to the 256-byte granularity, for buffers that live as long as a model (parameters,
    /// gradients, optimizer moments): a bucket's rounding would reserve memory nothing ever uses.
    /// </summary>
    public DeviceBlock AllocateExact(long elements) =>
        Allocate(elements, (Math.Max(1, elements) + SmallestBucket - 1) / SmallestBucket * SmallestBucket);

    private DeviceBlock Allocate(long elements, long bucket)
    {
        OnAllocate?.Invoke(elements);
        MemoryBuffer1D<float, Stride1D.Dense> buffer;
        if (free.TryGetValue(bucket, out var stack) && stack.Count > 0)
        {
            buffer = stack.Pop();
            CacheHits++;
        }
        else buffer = AllocateFromDriver(bucket);
        BytesInUse += bucket * sizeof(float);
        PeakBytesInUse = Math.Max(PeakBytesInUse, BytesInUse);
        RequestedBytesInUse += elements * sizeof(float);
        PeakRequestedBytes = Math.Max(PeakRequestedBytes, RequestedBytesInUse);
        return new DeviceBlock(buffer, bucket, elements, TakeId(), IsMeta);
    }

    public void Free(DeviceBlock block)
    {
        if (block.IsFreed) return;
        OnFree?.Invoke(block);
        block.IsFreed = true;
        Frees++;
        BytesInUse -= block.BucketElements * sizeof(float);
        RequestedBytesInUse -= block.RequestedElements * sizeof(float);
        if (!free.TryGetValue(block.BucketElements, out var stack)) free[block.BucketElements] = stack = new();
        stack.Push(block.Buffer);
    }

    /// <summary>Returns every cached (unused) block to the driver.</summary>
    public void ReleaseCached()
    {
        foreach (var (bucket, stack) in free)
            while (stack.Count > 0)
            {
                var buffer = stack.Pop();
                BytesReserved -= bucket * sizeof(float);
                if (buffer != placeholder) buffer.Dispose();
            }
    }

    public void ResetPeak()
    {
        PeakBytesInUse = BytesInUse;
        PeakRequestedBytes = RequestedBytesInUse;
    }

    /// <summary>Called with every request's element count (diagnostics).</summary>
    internal Action<long>? OnAllocate { get; set; }

    /// <summary>Called with every block returned (diagnostics).</summary>
    internal Action<DeviceBlock>? OnFree { get; set; }

    private MemoryBuffer1D<float, Stride1D.Dense> AllocateFromDriver(long bucket)
    {
        try
        {
            return Count(TryDriver(bucket));
        }
        catch (Exception first) when (first is OutOfMemoryException or AcceleratorException)
        {
            ReleaseCached(); // cached blocks of other sizes may be what stands in the way
            try
            {
                return Count(TryDriver(bucket));
            }
            catch (Exception second) when (second is OutOfMemoryException or AcceleratorException)
            {
                throw new UserException(
                    $"Out of device memory allocating {bucket * 4.0 / (1 << 20):0.#} MiB " +
                    $"({BytesInUse / (double)(1 << 30):0.##} GiB already in use on {accelerator.Name}). " +
                    "Use a smaller --batch or --seq, or a smaller preset.", second);
            }
        }
    }

    private (MemoryBuffer1D<float, Stride1D.Dense>, long) TryDriver(long bucket)
    {
        if (LimitBytes > 0 && BytesReserved + bucket * sizeof(float) > LimitBytes)
            throw new OutOfMemoryException($"the memory limit of {LimitBytes} bytes would be exceeded");
        return (placeholder ?? accelerator.Allocate1D<float>(bucket), bucket);
    }

    private MemoryBuffer1D<float, Stride1D.Dense> Count((MemoryBuffer1D<float, Stride1D.Dense> Buffer, long Bucket) allocated)
    {
        DriverAllocations++;
        BytesReserved += allocated.Bucket * sizeof(float);
        return allocated.Buffer;
    }

    public void Dispose()
    {
        ReleaseCached();
        free.Clear();
        placeholder?.Dispose();
    }
}
