using FlowHN.Kernels;
using FlowHN.Runtime;
using FlowHN.Tensors;
using static FlowHN.Diagnostics.HostReference;
using FlowHN.Autograd;

namespace FlowHN.Diagnostics;

public static partial class KernelChecks
{
    /// <summary>
    /// Sizes that are no multiple of any group or warp, with odd sequence lengths and odd routed token counts (a
    /// third and a half of 1,031 or 77); on a GPU model-sized rows and a small case with an odd width too.
    /// </summary>
    private static (int Batch, int Length, int Dim)[] RoutingSizes(Session d) => d.Runtime.IsCuda ? [(3, 1031, 768), (1, 77, 45)] : [(2, 37, 24)];

    private static double RoutingGatherCheck(Session d, Random random) =>
        RoutingSizes(d).Max(size => RoutingGatherCase(d, random, size));

    private static double RoutingScatterAddCheck(Session d, Random random) =>
        RoutingSizes(d).Max(size => RoutingScatterAddCase(d, random, size));

    private static double RoutingMergeCheck(Session d, Random random) =>
        RoutingSizes(d).Max(size => RoutingMergeCase(d, random, size));

    /// <summary>
    /// A random sorted subset of 0..length-1 and the sorted rest: scattered positions, like a fac plan's SSM
    /// tokens, so a kernel that assumed contiguous runs would fail.
    /// </summary>
    private static (int[] Chosen, int[] Others) RandomPartition(Random random, int length, int count)
    {
        var shuffled = Enumerable.Range(0, length).OrderBy(_ => random.Next()).ToArray();
        return (shuffled[..count].Order().ToArray(), shuffled[count..].Order().ToArray());
    }

    private static Tensor UpInts(Session d, int[] data) => Tensor.FromArray(d, data, data.Length);

    /// <summary>Gather, and gather-add onto a random start (the backward of a merge).</summary>
    private static double RoutingGatherCase(Session d, Random random, (int Batch, int Length, int Dim) size)
    {
        var (batch, length, dim) = size;
        var (positions, _) = RandomPartition(random, length, length / 3);
        var s = RoutingLauncher.Shape(batch, length, positions.Length, dim);
        var x = Randoms(random, batch * length * dim);
        var xt = Up(d, x, x.Length);
        var positionsT = UpInts(d, positions);
        var part = Tensor.Empty(d, [s.Elements]);
        var k = d.Kernels.Routing;
        k.Gather(s, xt.View, positionsT.IntView, part.View);
        var start = Randoms(random, s.Elements);
        var accumulated = Up(d, start, s.Elements);
        k.GatherAdd(s, xt.View, positionsT.IntView, accumulated.View);
        var expected = GatherTokens(x, batch, length, dim, positions);
        return Math.Max(RelativeError(part.ToArray(), expected), GradientError(accumulated, start, expected));
    }

    /// <summary>The backward of a gather: adds onto a random start, and nothing to rows not in the list.</summary>
    private static double RoutingScatterAddCase(Session d, Random random, (int Batch, int Length, int Dim) size)
    {
        var (batch, length, dim) = size;
        var (positions, _) = RandomPartition(random, length, length / 2);
        var s = RoutingLauncher.Shape(batch, length, positions.Length, dim);
        var dy = Randoms(random, s.Elements);
        var start = Randoms(random, batch * length * dim);
        var dx = Up(d, start, start.Length);
        d.Kernels.Routing.ScatterAdd(s, Up(d, dy, dy.Length).View, UpInts(d, positions).IntView, dx.View);
        var added = ScatterAddTokens(new float[start.Length], batch, length, dim, dy, positions);
        return GradientError(dx, start, added);
    }

    /// <summary>Two branches' rows put back into a NaN-filled sequence: any row left unwritten fails the check.</summary>
    private static double RoutingMergeCase(Session d, Random random, (int Batch, int Length, int Dim) size)
    {
        var (batch, length, dim) = size;
        var (first, second) = RandomPartition(random, length, 2 * length / 5);
        var s1 = RoutingLauncher.Shape(batch, length, first.Length, dim);
        var s2 = RoutingLauncher.Shape(batch, length, second.Length, dim);
        var part1 = Randoms(random, s1.Elements);
        var part2 = Randoms(random, s2.Elements);
        var merged = Tensor.Empty(d, [batch * length * dim]);
        d.Kernels.Elementwise.Fill(merged.View, float.NaN);
        var k = d.Kernels.Routing;
        k.ScatterInto(s1, Up(d, part1, part1.Length).View, UpInts(d, first).IntView, merged.View);
        k.ScatterInto(s2, Up(d, part2, part2.Length).View, UpInts(d, second).IntView, merged.View);
        return RelativeError(merged.ToArray(), MergeTokens(batch, length, dim, (part1, first), (part2, second)));
    }
}
