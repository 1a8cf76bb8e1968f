using FlowHN.Autograd;
using FlowHN.Diagnostics;
using FlowHN.Kernels;
using FlowHN.Tensors;

namespace FlowHN.Tests.Kernels;

/// <summary>
/// The flash kernels' two ways of walking tiles (staged in shared memory with several lanes per row, straight from
/// memory with one) and their mask bounds (binary search over sorted positions, a linear walk otherwise): forward
/// and all three gradients against the float64 reference on every CPU preset, the GPU's geometry included.
/// </summary>
public class AttentionTileTests
{
    private const double Tolerance = 1e-4;

    public static IEnumerable<object[]> Devices() => [["default"], ["wide"], ["warp32"]];

    [Theory]
    [MemberData(nameof(Devices))]
    public void UnsortedPositionsMatchTheReference(string device)
    {
        // Routed tokens in any order: a permutation of queries and one of keys, several tiles of both.
        int[] qPos = Shuffled(Enumerable.Range(2, 19).ToArray(), seed: 1), kPos = Shuffled(Enumerable.Range(0, 23).ToArray(), seed: 2);
        AssertMatchesReference(device, qPos, kPos, hq: 2, hkv: 1, d: 12, seed: 10);
    }

    [Theory]
    [MemberData(nameof(Devices))]
    public void SortedPositionsWithRepeatsAndGapsMatchTheReference(string device)
    {
        // Equal positions on both sides (the searches' edges), a query that sees no key and keys no query sees.
        int[] qPos = [0, 1, 1, 3, 3, 3, 4, 7, 8, 8, 9, 12, 12, 13, 15, 15, 16, 18, 20];
        int[] kPos = [1, 1, 2, 3, 3, 5, 6, 6, 6, 8, 9, 10, 10, 11, 13, 14, 14, 17, 19, 21, 22];
        AssertMatchesReference(device, qPos, kPos, hq: 2, hkv: 1, d: 9, seed: 20);
    }

    private static void AssertMatchesReference(string deviceName, int[] qPos, int[] kPos, int hq, int hkv, int d, int seed)
    {
        var device = TestDevice.Get(deviceName);
        const int batch = 1; // the GPU geometry on the CPU is slow: one sequence
        int lq = qPos.Length, lk = kPos.Length;
        var shape = AttentionLauncher.Shape(batch, lq, lk, hq, hkv, d);
        float[] qHost = Reference.Random(batch * lq * hq * d, seed), kHost = Reference.Random(batch * lk * hkv * d, seed + 1);
        float[] vHost = Reference.Random(batch * lk * hkv * d, seed + 2), dOHost = Reference.Random(batch * lq * hq * d, seed + 3);
        using var scope = device.BeginScope();
        var q = Tensor.FromArray(device, qHost, batch, lq, hq, d);
        var k = Tensor.FromArray(device, kHost, batch, lk, hkv, d);
        var v = Tensor.FromArray(device, vHost, batch, lk, hkv, d);
        foreach (var t in new[] { q, k, v }) t.RequiresGrad = true;
        var o = Ops.Attention(q, k, v, Tensor.FromArray(device, qPos, lq), Tensor.FromArray(device, kPos, lk));
        device.Tape.Backward(o, Tensor.FromArray(device, dOHost, o.Shape));

        Reference.AssertClose(o.ToArray(), HostReference.Attention(qHost, kHost, vHost, qPos, kPos, shape).Out, Tolerance);
        var (dq, dk, dv) = HostReference.AttentionBackward(qHost, kHost, vHost, qPos, kPos, dOHost, shape);
        Reference.AssertClose(q.Grad!.ToArray(), dq, Tolerance);
        Reference.AssertClose(k.Grad!.ToArray(), dk, Tolerance);
        Reference.AssertClose(v.Grad!.ToArray(), dv, Tolerance);
    }

    private static int[] Shuffled(int[] values, int seed)
    {
        new Random(seed).Shuffle(values);
        return values;
    }
}
