using FlowHN.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

/// <summary>Token embedding lookup and its gradient.</summary>
internal static class EmbeddingKernels
{
    /// <summary>y[t, j] = table[ids[t], j].</summary>
    public static void EmbeddingGather(int n, int dim, ArrayView<int> ids, ArrayView<float> table, ArrayView<float> y)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        for (int i = first; i < n; i += stride)
        {
            int t = i / dim;
            int j = i - t * dim;
            y[i] = table[(long)ids[t] * dim + j];
        }
    }

    /// <summary>
    /// dTable[id, :] += sum of dy over the positions holding id. One group per distinct id, positions taken in
    /// the order of <paramref name="order"/> (the positions sorted by id): no atomics, so it is deterministic.
    /// </summary>
    public static void EmbeddingScatterAdd(int dim, ArrayView<int> uniqueIds, ArrayView<int> starts, ArrayView<int> order,
        ArrayView<float> dy, ArrayView<float> dTable)
    {
        int lane = Group.IdxX, lanes = Group.DimX;
        int u = Grid.IdxX;
        int begin = starts[u];
        int end = starts[u + 1];
        long target = (long)uniqueIds[u] * dim;
        for (int j = lane; j < dim; j += lanes)
        {
            float acc = 0f;
            for (int p = begin; p < end; p++) acc += dy[(long)order[p] * dim + j];
            dTable[target + j] += acc;
        }
    }
}

/// <summary>Typed entry points for <see cref="EmbeddingKernels"/>.</summary>
internal sealed class EmbeddingLauncher : KernelFamily
{
    private readonly Action<AcceleratorStream, KernelConfig, int, int, ArrayView<int>, ArrayView<float>, ArrayView<float>> gather;
    private readonly Action<AcceleratorStream, KernelConfig, int, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>> scatterAdd;

    public EmbeddingLauncher(ComputeDevice device, IScratchMemory scratch) : base(device, scratch)
    {
        gather = Load<int, int, ArrayView<int>, ArrayView<float>, ArrayView<float>>(EmbeddingKernels.EmbeddingGather);
        scatterAdd = Load<int, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>>(
            EmbeddingKernels.EmbeddingScatterAdd);
    }

    public void Gather(int tokens, int dim, ArrayView<int> ids, ArrayView<float> table, ArrayView<float> y)
    {
        Counters.Kernel();
        int n = Launch.CheckedInt((long)tokens * dim, "embedding output");
        gather(Stream, Launch.Grid1D(Device, n), n, dim, ids, table, y);
    }

    public void ScatterAdd(int distinctIds, int dim, ArrayView<int> uniqueIds, ArrayView<int> starts, ArrayView<int> order,
        ArrayView<float> dy, ArrayView<float> dTable)
    {
        if (distinctIds == 0) return;
        Counters.Kernel();
        int group = Device.IsCuda ? Math.Min(256, Math.Max(32, dim)) : Device.Accelerator.MaxNumThreadsPerGroup;
        scatterAdd(Stream, new KernelConfig(new Index3D(distinctIds, 1, 1), new Index3D(group, 1, 1)), dim, uniqueIds,
            starts, order, dy, dTable);
    }
}
