
namespace FlowHN.Tensors;

/// <summary>
/// A batch of token ids on the device, plus the plan the embedding gradient needs: the distinct ids, and the
/// positions grouped by id (a CSR layout). The ids come from the host anyway, so building the plan there
/// costs nothing on the device and lets the gradient scatter run without atomics, deterministically.
/// </summary>
public sealed class TokenIndex : IDisposable
{
    private readonly Tensor storage; // everything below is a view of this one upload

    private TokenIndex(Tensor storage, Tensor ids, Tensor distinctIds, Tensor starts, Tensor order, Tensor? targets, int maxId)
    {
        this.storage = storage;
        Ids = ids;
        DistinctIds = distinctIds;
        Starts = starts;
        Order = order;
        Targets = targets;
        MaxId = maxId;
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

    public static TokenIndex FromHost(TensorDevice device, int[] ids, params int[] shape) => Build(device, ids, null, shape);

    /// <summary>Token ids and their next-token targets, uploaded together with the id plan in one copy.</summary>
    public static TokenIndex FromBatch(TensorDevice device, int[] ids, int[] targets, params int[] shape) =>
        Build(device, ids, targets, shape);

    private static TokenIndex Build(TensorDevice device, int[] ids, int[]? targets, int[] shape)
    {
        int maxId = -1;
        foreach (int id in ids)
        {
            if (id < 0) throw new ArgumentException($"Negative token id {id}.");
            maxId = Math.Max(maxId, id);
        }
        var order = Enumerable.Range(0, ids.Length).ToArray();
        Array.Sort(order, (x, y) => ids[x] != ids[y] ? ids[x].CompareTo(ids[y]) : x.CompareTo(y));
        var distinct = new List<int>();
        var starts = new List<int>();
        for (int p = 0; p < order.Length; p++)
        {
            if (p == 0 || ids[order[p]] != ids[order[p - 1]])
            {
                distinct.Add(ids[order[p]]);
                starts.Add(p);
            }
        }
        starts.Add(order.Length);
        // One host array, one upload (each upload from a pageable array makes the host wait on a GPU).
        int[][] parts = [ids, [.. distinct], [.. starts], order, targets ?? []];
        var packed = new int[parts.Sum(x => x.Length)];
        var offsets = new long[parts.Length];
        for (int i = 0, at = 0; i < parts.Length; at += parts[i].Length, i++)
        {
            offsets[i] = at;
            parts[i].CopyTo(packed, at);
        }
        var storage = Tensor.FromArray(device, packed, packed.Length);
        Tensor Part(int i, int[] partShape) => storage.ViewAs(partShape, Tensor.ContiguousStrides(partShape), offsets[i]);
        return new TokenIndex(storage, Part(0, (int[])shape.Clone()), Part(1, [distinct.Count]), Part(2, [starts.Count]),
            Part(3, [order.Length]), targets is null ? null : Part(4, [targets.Length]), maxId);
    }

    public void Dispose() => storage.Dispose();
}
