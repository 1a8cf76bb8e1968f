using FlowHN.Runtime;

namespace FlowHN.Tensors;

/// <summary>
/// A batch of token ids on the device, plus the plan the embedding gradient needs: the distinct ids, and the
/// positions grouped by id (a CSR layout). The ids come from the host anyway, so building the plan there
/// costs nothing on the device and lets the gradient scatter run without atomics, deterministically.
/// </summary>
public sealed class TokenIndex : IDisposable
{
    private TokenIndex(Tensor ids, Tensor distinctIds, Tensor starts, Tensor order, int maxId)
    {
        Ids = ids;
        DistinctIds = distinctIds;
        Starts = starts;
        Order = order;
        MaxId = maxId;
    }

    public Tensor Ids { get; }
    public Tensor DistinctIds { get; }
    /// <summary>Positions of distinct id u are Order[Starts[u] .. Starts[u+1]).</summary>
    public Tensor Starts { get; }
    public Tensor Order { get; }
    public int MaxId { get; }
    public int Count => (int)Ids.Length;
    public int DistinctCount => (int)DistinctIds.Length;

    public static TokenIndex FromHost(ComputeDevice device, int[] ids, params int[] shape)
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
        return new TokenIndex(
            Tensor.FromArray(device, ids, shape),
            Tensor.FromArray(device, distinct.ToArray(), distinct.Count),
            Tensor.FromArray(device, starts.ToArray(), starts.Count),
            Tensor.FromArray(device, order, order.Length),
            maxId);
    }

    public void Dispose()
    {
        Ids.Dispose();
        DistinctIds.Dispose();
        Starts.Dispose();
        Order.Dispose();
    }
}
