using FlowHN.Runtime;

namespace FlowHN.Tensors;

/// <summary>
/// Where each part of a packed token batch lies: [ids][distinct ids][starts][order][targets], one host buffer
/// and one upload (see <see cref="TokenIndex.WritePlan"/>).
/// </summary>
public readonly record struct TokenPlanLayout(int Count, int DistinctCount, int TargetCount, int MaxId)
{
    public int DistinctAt => Count;
    public int StartsAt => DistinctAt + DistinctCount;
    public int OrderAt => StartsAt + DistinctCount + 1;
    public int TargetsAt => OrderAt + Count;
    public int Length => TargetsAt + TargetCount;

    /// <summary>The most a batch of <paramref name="count"/> ids with targets can take (every id distinct).</summary>
    public static int Capacity(int count) => checked(5 * count + 1);
}

/// <summary>
/// A batch of token ids on the device, plus the plan the embedding gradient needs: the distinct ids, and the
/// positions grouped by id (a CSR layout). The ids come from the host anyway, so building the plan there
/// costs nothing on the device and lets the gradient scatter run without atomics, deterministically.
/// </summary>
public sealed class TokenIndex : IDisposable
{
    private readonly Tensor storage; // everything below is a view of this one upload

    private TokenIndex(Tensor storage, TokenPlanLayout layout, int[] shape)
    {
        this.storage = storage;
        Tensor Part(int at, int[] partShape) => storage.ViewAs(partShape, Tensor.ContiguousStrides(partShape), at);
        Ids = Part(0, (int[])shape.Clone());
        DistinctIds = Part(layout.DistinctAt, [layout.DistinctCount]);
        Starts = Part(layout.StartsAt, [layout.DistinctCount + 1]);
        Order = Part(layout.OrderAt, [layout.Count]);
        Targets = layout.TargetCount == 0 ? null : Part(layout.TargetsAt, [layout.TargetCount]);
        MaxId = layout.MaxId;
    }

    public Tensor Ids { get; }
    public Tensor DistinctIds { get; }
    /// <summary>Positions of distinct id u are Order[Starts[u] .. Starts[u+1]).</summary>
    public Tensor Starts { get; }
    public Tensor Order { get; }
    /// <summary>The next-token targets, flat [tokens], when the batch came with them (<see cref="FromBatch"/>).</summary>
    public Tensor? Targets { get; }
    public int MaxId { get; }
    public int Count => (int)Ids.Length;
    public int DistinctCount => (int)DistinctIds.Length;

    public static TokenIndex FromHost(TensorDevice device, int[] ids, params int[] shape) => Build(device, ids, [], shape);

    /// <summary>Token ids and their next-token targets, uploaded together with the id plan in one copy.</summary>
    public static TokenIndex FromBatch(TensorDevice device, int[] ids, int[] targets, params int[] shape) =>
        Build(device, ids, targets, shape);

    /// <summary>
    /// A batch whose plan <see cref="WritePlan"/> put in a page-locked buffer: one asynchronous copy on the current
    /// stream, no host wait (the buffer must stay unwritten until its copy is done).
    /// </summary>
    public static TokenIndex FromPinned(TensorDevice device, PinnedHostBuffer staging, TokenPlanLayout layout, params int[] shape)
    {
        CheckShape(layout.Count, shape);
        var storage = Tensor.Empty(device, [layout.Length], DType.Int32);
        staging.CopyTo(storage.IntView, layout.Length);
        return new TokenIndex(storage, layout, shape);
    }

    private static TokenIndex Build(TensorDevice device, int[] ids, int[] targets, int[] shape)
    {
        CheckShape(ids.Length, shape);
        // One host array, one upload (each upload from a pageable array makes the host wait on a GPU).
        var packed = new int[TokenPlanLayout.Capacity(ids.Length)];
        var layout = WritePlan(ids, targets, packed);
        var storage = Tensor.FromArray(device, packed[..layout.Length], layout.Length);
        return new TokenIndex(storage, layout, shape);
    }

    /// <summary>
    /// Builds the id plan on the host and writes ids, plan and targets packed into <paramref name="packed"/>
    /// (at least <see cref="TokenPlanLayout.Capacity"/> values). Touches no device, so a worker thread can
    /// prepare the next batch while the current one trains.
    /// </summary>
    public static TokenPlanLayout WritePlan(ReadOnlySpan<int> ids, ReadOnlySpan<int> targets, Span<int> packed)
    {
        int maxId = -1;
        foreach (int id in ids)
        {
            if (id < 0) throw new ArgumentException($"Negative token id {id}.");
            maxId = Math.Max(maxId, id);
        }
        var order = new int[ids.Length];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        var keys = ids.ToArray();
        Array.Sort(order, (x, y) => keys[x] != keys[y] ? keys[x].CompareTo(keys[y]) : x.CompareTo(y));
        int distinct = 0;
        for (int p = 0; p < order.Length; p++)
            if (p == 0 || keys[order[p]] != keys[order[p - 1]]) distinct++;
        var layout = new TokenPlanLayout(ids.Length, distinct, targets.Length, maxId);
        if (packed.Length < layout.Length) throw new ArgumentException($"The plan needs {layout.Length} values, the buffer has {packed.Length}.");
        ids.CopyTo(packed);
        for (int p = 0, u = 0; p < order.Length; p++)
        {
            if (p == 0 || keys[order[p]] != keys[order[p - 1]])
            {
                packed[layout.DistinctAt + u] = keys[order[p]];
                packed[layout.StartsAt + u] = p;
                u++;
            }
        }
        packed[layout.StartsAt + distinct] = order.Length;
        order.CopyTo(packed[layout.OrderAt..]);
        targets.CopyTo(packed[layout.TargetsAt..]);
        return layout;
    }

    private static void CheckShape(int count, int[] shape)
    {
        long length = 1;
        foreach (int d in shape) length *= d;
        if (length != count) throw new ArgumentException($"{count} ids do not fill shape [{string.Join(", ", shape)}].");
    }

    public void Dispose() => storage.Dispose();
}
