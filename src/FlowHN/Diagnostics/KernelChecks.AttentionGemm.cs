using FlowHN.Autograd;
using FlowHN.Kernels;
using FlowHN.Tensors;
using static FlowHN.Diagnostics.HostReference;

namespace FlowHN.Diagnostics;

public static partial class KernelChecks
{
    /// <summary>
    /// The gemm attention path on the flash path's cases, plus routed positions (unordered keys, queries for a
    /// subset of positions, one query that sees no key). On the CPU blocks of 8 query rows, so 19 queries make
    /// two full blocks and a ragged one; on a GPU the default block, which 300 queries fill once with a ragged rest.
    /// </summary>
    private static double AttentionGemmCheck(Session d, Random random, bool backward)
    {
        int queryBlock = d.Runtime.IsCuda ? 0 : 8;
        var cases = AttentionCases(d)
            .Select(c => (c.Shape, Enumerable.Range(c.FirstQuery, c.Shape.QueryLength).ToArray(),
                Enumerable.Range(0, c.Shape.KeyLength).ToArray()))
            .Append(RoutedCase(d, random));
        return cases.ToList().Max(c => AttentionGemmCase(d, random, c.Item1, c.Item2, c.Item3, queryBlock, backward));
    }

    /// <summary>Keys at shuffled positions, queries at a sorted subset of them starting below every key but one.</summary>
    private static (AttentionShape, int[], int[]) RoutedCase(Session d, Random random)
    {
        int keys = d.Runtime.IsCuda ? 300 : 21, queries = d.Runtime.IsCuda ? 150 : 11;
        var kPos = Enumerable.Range(1, keys).OrderBy(_ => random.Next()).ToArray();
        var qPos = Enumerable.Range(0, keys).OrderBy(_ => random.Next()).Take(queries).Order().ToArray();
        qPos[0] = 0; // sees no key (positions start at 1)
        return (AttentionLauncher.Shape(2, queries, keys, 4, 2, 24), qPos, kPos);
    }

    private static double AttentionGemmCase(Session d, Random random, AttentionShape s, int[] qPos, int[] kPos,
        int queryBlock, bool backward)
    {
        int qn = s.Batch * s.QueryLength * s.QueryHeads * s.HeadDim, kn = s.Batch * s.KeyLength * s.KvHeads * s.HeadDim;
        var (q, k, v) = (Randoms(random, qn), Randoms(random, kn), Randoms(random, kn));
        var inputs = new AttentionInputs
        {
            Q = Up(d, q, qn).View, K = Up(d, k, kn).View, V = Up(d, v, kn).View,
            QueryPositions = Tensor.FromArray(d, qPos, qPos.Length).IntView,
            KeyPositions = Tensor.FromArray(d, kPos, kPos.Length).IntView,
        };
        var o = Tensor.Empty(d, [qn]);
        var lse = Tensor.Empty(d, [s.QueryRows]);
        var kernels = d.Kernels.AttentionGemm;
        kernels.Forward(s, inputs, qPos, kPos, o.View, lse.View, queryBlock);
        if (!backward)
        {
            var (outRef, lseRef) = Attention(q, k, v, qPos, kPos, s);
            return Math.Max(RelativeError(o.ToArray(), outRef), LseError(lse.ToArray(), lseRef));
        }
        // Random starting gradients: the products must add to them, not overwrite them.
        var dO = Randoms(random, qn);
        var (dq0, dk0, dv0) = (Randoms(random, qn), Randoms(random, kn), Randoms(random, kn));
        var (dq, dk, dv) = (Up(d, dq0, qn), Up(d, dk0, kn), Up(d, dv0, kn));
        var delta = Tensor.Empty(d, [s.QueryRows]);
        kernels.Backward(s, inputs, qPos, kPos, o.View, lse.View, Up(d, dO, qn).View, delta.View,
            new AttentionGradients { DQ = dq.View, DK = dk.View, DV = dv.View }, queryBlock);
        var (dqRef, dkRef, dvRef) = AttentionBackward(q, k, v, qPos, kPos, dO, s);
        return Math.Max(GradientError(dq, dq0, dqRef), Math.Max(GradientError(dk, dk0, dkRef), GradientError(dv, dv0, dvRef)));
    }

    /// <summary>The lse's error, where a query that sees nothing must have -inf in both (then it is left out).</summary>
    private static double LseError(float[] lse, double[] expected)
    {
        for (int i = 0; i < lse.Length; i++)
            if (float.IsNegativeInfinity(lse[i]) != double.IsNegativeInfinity(expected[i])) return double.PositiveInfinity;
        var seen = Enumerable.Range(0, lse.Length).Where(i => !double.IsNegativeInfinity(expected[i])).ToArray();
        return RelativeError(seen.Select(i => lse[i]).ToArray(), seen.Select(i => expected[i]).ToArray());
    }
}
