using FlowHN.Kernels;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Autograd;

public static partial class Ops
{
    /// <summary>
    /// Multi-head attention with grouped KV heads, masked by position: q [B, Lq, Hq, D], k and v [B, Lk, Hkv, D]
    /// (Hkv divides Hq), int positions [Lq] and [Lk] shared by the batch rows; key j is visible to query i iff
    /// kPos[j] &lt;= qPos[i].
    /// Returns [B, Lq, Hq, D], softmax(q k^T / sqrt(D)) v per head; a query that sees no key gets 0.
    /// Runs the flash kernels or query blocks of batched matrix products (--attention; see
    /// TensorDevice.GemmAttention); model FLOPs are the visible pairs either way.
    /// </summary>
    public static Tensor Attention(Tensor q, Tensor k, Tensor v, Tensor qPositions, Tensor kPositions)
    {
        var s = AttentionShapeOf(q, k, v, qPositions, kPositions);
        var device = q.Device;
        var kernels = device.Kernels.Attention;
        bool gemmPath = device.GemmAttention; // same contract either way (see AttentionGemmLauncher)
        int[]? qHost = qPositions.HostInts, kHost = kPositions.HostInts;
        var o = Like(q);
        var lse = Tensor.Empty(device, [s.Batch, s.QueryHeads, s.QueryLength]);
        var inputs = new AttentionInputs
        {
            Q = q.View, K = k.View, V = v.View, QueryPositions = qPositions.IntView, KeyPositions = kPositions.IntView,
        };
        if (gemmPath) device.Kernels.AttentionGemm.Forward(s, inputs, qHost, kHost, o.View, lse.View);
        else kernels.Forward(s, inputs, o.View, lse.View);
        // Model FLOPs: scores and weighted values, 2 * 2 * D per visible (query, key) pair and query head.
        double forwardFlops = 4.0 * s.HeadDim * s.QueryHeads * s.Batch * VisiblePairs(qPositions, kPositions);
        device.Runtime.Counters.Attention(forwardFlops);
        return Record(o, dO =>
        {
            device.Runtime.Counters.Attention(2 * forwardFlops);
            var delta = Tensor.Empty(device, lse.Shape);
            bool keyValue = k.RequiresGrad || v.RequiresGrad;
            var grads = new AttentionGradients
            {
                DQ = GradientOrScratch(q),
                DK = keyValue ? GradientOrScratch(k) : default,
                DV = keyValue ? GradientOrScratch(v) : default,
            };
            if (gemmPath) device.Kernels.AttentionGemm.Backward(s, inputs, qHost, kHost, o.View, lse.View, dO.View, delta.View, grads);
            else kernels.Backward(s, inputs, o.View, lse.View, dO.View, delta.View, grads);
        }, q, k, v);
    }

    /// <summary>(query, key) pairs with kPos &lt;= qPos, from the host copies of the positions (0 when unknown).</summary>
    private static long VisiblePairs(Tensor qPositions, Tensor kPositions)
    {
        if (qPositions.HostInts is not int[] queries || kPositions.HostInts is not int[] keys) return 0;
        var sorted = (int[])keys.Clone();
        Array.Sort(sorted);
        long pairs = 0;
        foreach (int qp in queries)
        {
            int index = Array.BinarySearch(sorted, qp + 1);        // first key position > qp
            pairs += index >= 0 ? LowerBound(sorted, qp + 1) : ~index;
        }
        return pairs;
    }

    private static int LowerBound(int[] sorted, int value)
    {
        int lo = 0, hi = sorted.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) / 2;
            if (sorted[mid] < value) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }

    /// <summary>Ordinary causal attention over one sequence: positions 0..L-1 for queries and keys.</summary>
    public static Tensor CausalAttention(Tensor q, Tensor k, Tensor v)
    {
        if (q.Rank != 4 || k.Rank != 4 || q.Dim(1) != k.Dim(1))
            throw new ArgumentException($"CausalAttention: q {q.ShapeString} and k {k.ShapeString} need the same length.");
        var positions = Positions(q.Device, q.Dim(1));
        return Attention(q, k, v, positions, positions);
    }

    /// <summary>Rotary position embedding of x [B, L, H, D] at int positions [L] (half-split pairs, base theta).</summary>
    public static Tensor Rope(Tensor x, Tensor positions, float theta = 10000f)
    {
        if (x.Rank != 4) throw new ArgumentException($"Rope: x {x.ShapeString} must be [batch, length, heads, headDim].");
        RequirePositions(positions, x.Dim(1), "Rope");
        var s = RopeLauncher.Shape(x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3), theta);
        var kernels = x.Device.Kernels.Rope;
        var y = Like(x);
        kernels.Forward(s, x.View, y.View, positions.IntView);
        return Record(y, dy => kernels.Backward(s, dy.View, Gradients.For(x).View, positions.IntView), x);
    }

    /// <summary>An int tensor [length] holding first, first + 1, ... (built on the device, no host copy).</summary>
    public static Tensor Positions(TensorDevice device, int length, int first = 0)
    {
        var positions = Tensor.Empty(device, [length], DType.Int32);
        device.Kernels.Attention.Positions(positions.IntView, first);
        positions.HostInts = Enumerable.Range(first, length).ToArray();
        return positions;
    }

    private static AttentionShape AttentionShapeOf(Tensor q, Tensor k, Tensor v, Tensor qPositions, Tensor kPositions)
    {
        if (q.Rank != 4 || k.Rank != 4 || !k.Shape.SequenceEqual(v.Shape))
            throw new ArgumentException(
                $"Attention: q {q.ShapeString} must be [B, Lq, Hq, D] and k {k.ShapeString}, v {v.ShapeString} both [B, Lk, Hkv, D].");
        if (k.Dim(0) != q.Dim(0) || k.Dim(3) != q.Dim(3))
            throw new ArgumentException($"Attention: batch or head dim of q {q.ShapeString} and k {k.ShapeString} differ.");
        RequirePositions(qPositions, q.Dim(1), "Attention (query positions)");
        RequirePositions(kPositions, k.Dim(1), "Attention (key positions)");
        return AttentionLauncher.Shape(q.Dim(0), q.Dim(1), k.Dim(1), q.Dim(2), k.Dim(2), q.Dim(3));
    }

    private static void RequirePositions(Tensor positions, int length, string op)
    {
        if (positions.DType != DType.Int32 || positions.Length != length)
            throw new ArgumentException($"{op}: positions must be {length} ints, got {positions}.");
    }
}
