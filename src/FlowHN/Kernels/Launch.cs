using FlowHN.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

/// <summary>Launch geometry shared by the kernel families.</summary>
internal static class Launch
{
    /// <summary>
    /// A grid for grid-stride loops over <paramref name="n"/> elements: enough groups to fill the device,
    /// never more than the work needs. On the CPU accelerator one group per multiprocessor is fastest.
    /// </summary>
    public static KernelConfig Grid1D(ComputeDevice device, long n, int sharedFloats = 0)
    {
        int group = device.GroupSize;
        long needed = Math.Max(1, (n + group - 1) / group);
        int cap = device.IsCuda ? device.Accelerator.NumMultiprocessors * 16 : device.Accelerator.NumMultiprocessors;
        int groups = (int)Math.Min(needed, cap);
        return Config(new Index3D(groups, 1, 1), new Index3D(group, 1, 1), sharedFloats);
    }

    /// <summary>
    /// Geometry for row kernels (see <c>RowLoop</c>): on CUDA a whole group per row, its threads striding over
    /// the row and reducing through shared memory; on the CPU accelerator one thread per row, so no barrier runs.
    /// </summary>
    public static (KernelConfig Config, int LanesPerRow) PerRow(ComputeDevice device, int rows, int rowLength)
    {
        int group = device.IsCuda ? RowGroupSize(rowLength) : device.Accelerator.MaxNumThreadsPerGroup;
        int lanes = device.IsCuda ? group : device.Options.CpuLanesPerRow;
        int rowsPerGroup = group / lanes;
        // Kernels stride over rows, so the CPU accelerator gets one group per multiprocessor (starting a group
        // costs it microseconds) and a GPU gets a group per row up to a cap.
        int cap = device.IsCuda ? device.Accelerator.NumMultiprocessors * 32 : device.Accelerator.NumMultiprocessors;
        int groups = Math.Clamp((rows + rowsPerGroup - 1) / rowsPerGroup, 1, cap);
        return (Config(new Index3D(groups, 1, 1), new Index3D(group, 1, 1), group), lanes);
    }

    private static int RowGroupSize(int rowLength) => rowLength >= 4096 ? 512 : rowLength >= 1024 ? 256 : 128;

    public static KernelConfig Config(Index3D grid, Index3D group, int sharedFloats) =>
        sharedFloats > 0
            ? new KernelConfig(grid, group, SharedMemoryConfig.RequestDynamic<float>(sharedFloats))
            : new KernelConfig(grid, group);

    /// <summary>
    /// Most elements a kernel with 32-bit indices takes: grid-stride loops step up to a whole grid past the last
    /// element, so half the int range leaves them room (1.07 billion elements; the 1b preset's logits at batch 8
    /// are 0.41 billion).
    /// </summary>
    public const int MaxElements = int.MaxValue / 2;

    /// <summary>
    /// Splits [0, n) into consecutive chunks of at most <paramref name="chunk"/> elements, in order. Ranges that
    /// can pass 2^30 elements (the flat parameter, gradient and moment buffers of a 1B model) are launched chunk
    /// by chunk: kernels index inside a chunk with 32-bit ints, the chunk's offset stays 64-bit on the host.
    /// </summary>
    public static IEnumerable<(long Start, long Count)> Chunks(long n, long chunk = MaxElements)
    {
        if (chunk < 1) throw new ArgumentOutOfRangeException(nameof(chunk), "A chunk holds at least one element.");
        for (long start = 0; start < n; start += chunk) yield return (start, Math.Min(chunk, n - start));
    }

    /// <summary>Elements zeroed per memset: 1 GiB, well inside the 32-bit byte counts some back ends use.</summary>
    public const long ZeroChunk = 1L << 28;

    /// <summary>Zeroes a view of any length, one memset per <see cref="ZeroChunk"/> elements.</summary>
    public static void ZeroFill(ComputeDevice device, ArrayView<float> view)
    {
        foreach (var (start, count) in Chunks(view.Length, ZeroChunk))
        {
            if (!device.IsMeta) view.SubView(start, count).MemSetToZero(device.CurrentStream.Native);
            device.Counters.Kernel();
        }
    }

    public static int CheckedInt(long n, string what)
    {
        if (n > MaxElements)
            throw new UserException($"{what} has {n:N0} elements, more than the {MaxElements:N0} kernels index with 32-bit ints. " +
                                    "Use a smaller --batch (with --accum).");
        return (int)n;
    }
}
