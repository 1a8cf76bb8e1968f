using FlowHN.Kernels;
using FlowHN.Runtime;
using FlowHN.Tensors;
using static FlowHN.Diagnostics.HostReference;
using FlowHN.Autograd;

namespace FlowHN.Diagnostics;

public static partial class KernelChecks
{
    /// <summary>
    /// Head dims a GPU launches with different tiles and groups: 24 (the 135M preset; 32-key tiles, 32 rows per
    /// group), 64 (1b; dK/dV with 16-row tiles) and 128 (8-row tiles, 64-thread groups for the backward).
    /// </summary>
    private static readonly int[] GpuHeadDims = [24, 64, 128];

    /// <summary>
    /// Per head dim, three cases: ordinary causal attention (grouped heads, a length that is no multiple of any
    /// tile), queries for only the last third of the positions attending to keys of all positions (the mask by
    /// position), and an odd number of query and key rows (one sequence, 3 query heads on 1 KV head), so the last
    /// group has spare rows; on a GPU also more rows than its grid holds. The CPU runs one small set: 19 keys make
    /// a full key tile (16 on the CPU) and a ragged one, and 19 rows leave spare rows in groups of 4 with a GPU's
    /// 32 lanes per row; small, since a GPU's geometry on the CPU is slow.
    /// </summary>
    private static IEnumerable<(AttentionShape Shape, int FirstQuery)> AttentionCases(Session d)
    {
        foreach (int headDim in d.Runtime.IsCuda ? GpuHeadDims : [24])
        {
            var full = d.Runtime.IsCuda ? AttentionLauncher.Shape(2, 300, 300, 8, 2, headDim) : AttentionLauncher.Shape(2, 19, 19, 4, 2, headDim);
            int length = full.KeyLength, subset = length / 3;
            yield return (full, 0);
            yield return (AttentionLauncher.Shape(full.Batch, subset, length, full.QueryHeads, full.KvHeads, headDim), length - subset);
            yield return (d.Runtime.IsCuda ? AttentionLauncher.Shape(1, 301, 301, 3, 1, headDim) : AttentionLauncher.Shape(1, 19, 19, 1, 1, 8), 0);
            // More query rows (73,728) than a GPU's grid holds at once (32 groups per multiprocessor), so groups
            // stride over rows as in a training step; short sequences keep the float64 reference cheap.
            if (d.Runtime.IsCuda) yield return (AttentionLauncher.Shape(48, 48, 48, 32, 8, headDim), 0);
        }
    }

    /// <summary>Every case; the worst error counts.</summary>
    private static double AttentionCheck(Session d, Random random, bool backward) =>
        AttentionCases(d).ToList().Max(c => AttentionCase(d, random, c.Shape, c.FirstQuery, backward));

    private static double AttentionCase(Session d, Random random, AttentionShape s, int firstQuery, bool backward)
    {
        int qn = s.Batch * s.QueryLength * s.QueryHeads * s.HeadDim, kn = s.Batch * s.KeyLength * s.KvHeads * s.HeadDim;
        var q = Randoms(random, qn);
        var k = Randoms(random, kn);
        var v = Randoms(random, kn);
        var qPos = Enumerable.Range(firstQuery, s.QueryLength).ToArray();
        var kPos = Enumerable.Range(0, s.KeyLength).ToArray();
        var qt = Up(d, q, qn);
        var kt = Up(d, k, kn);
        var vt = Up(d, v, kn);
        var qPosT = Tensor.FromArray(d, qPos, qPos.Length);
        var kPosT = Tensor.FromArray(d, kPos, kPos.Length);
        var o = Tensor.Empty(d, [qn]);
        var lse = Tensor.Empty(d, [s.QueryRows]);
        var kernels = d.Kernels.Attention;
        var inputs = new AttentionInputs
        {
            Q = qt.View, K = kt.View, V = vt.View, QueryPositions = qPosT.IntView, KeyPositions = kPosT.IntView,
        };
        kernels.Forward(s, inputs, o.View, lse.View);
        if (!backward)
        {
            var (outRef, lseRef) = Attention(q, k, v, qPos, kPos, s);
            return Math.Max(RelativeError(o.ToArray(), outRef), RelativeError(lse.ToArray(), lseRef));
        }
        // Random starting gradients: the kernels must add to them, not overwrite them.
        var dO = Randoms(random, qn);
        var (dq0, dk0, dv0) = (Randoms(random, qn), Randoms(random, kn), Randoms(random, kn));
        var (dq, dk, dv) = (Up(d, dq0, qn), Up(d, dk0, kn), Up(d, dv0, kn));
        var delta = Tensor.Empty(d, [s.QueryRows]);
        kernels.Backward(s, inputs, o.View, lse.View, Up(d, dO, qn).View, delta.View,
            new AttentionGradients { DQ = dq.View, DK = dk.View, DV = dv.View });
        var (dqRef, dkRef, dvRef) = AttentionBackward(q, k, v, qPos, kPos, dO, s);
        return Math.Max(GradientError(dq, dq0, dqRef), Math.Max(GradientError(dk, dk0, dkRef), GradientError(dv, dv0, dvRef)));
    }

    /// <summary>Error of the accumulated part (gradient - starting value), so it is not hidden by the start.</summary>
    private static double GradientError(Tensor grad, float[] start, double[] expected) =>
        RelativeError(grad.ToArray().Select((g, i) => g - start[i]).ToArray(), expected);

    private static double RopeCheck(Session d, Random random, bool backward)
    {
        int batch = 2, length = d.Runtime.IsCuda ? 300 : 37, heads = 3, headDim = d.Runtime.IsCuda ? 64 : 24;
        int n = batch * length * heads * headDim;
        var x = Randoms(random, n);
        var positions = Enumerable.Range(0, length).Select(i => i + random.Next(4)).ToArray();
        var s = RopeLauncher.Shape(batch, length, heads, headDim);
        var positionsT = Tensor.FromArray(d, positions, length);
        var kernels = d.Kernels.Rope;
        if (!backward)
        {
            var y = Tensor.Empty(d, [n]);
            kernels.Forward(s, Up(d, x, n).View, y.View, positionsT.IntView);
            return RelativeError(y.ToArray(), Rope(x, positions, batch, length, heads, headDim, 10000));
        }
        var dx0 = Randoms(random, n);
        var dx = Up(d, dx0, n);
        kernels.Backward(s, Up(d, x, n).View, dx.View, positionsT.IntView);
        return GradientError(dx, dx0, Rope(x, positions, batch, length, heads, headDim, 10000, direction: -1));
    }
}
