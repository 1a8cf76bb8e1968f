using FlowHN.Autograd;
using FlowHN.Diagnostics;
using FlowHN.Kernels;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Tests.Kernels;

/// <summary>Flash attention against the float64 reference, the mask by position, causality and determinism.</summary>
public class AttentionTests
{
    private const double Tolerance = 1e-4;

    /// <summary>Inputs of one attention call, on the host and on the device.</summary>
    private sealed record Case(AttentionShape Shape, float[] Q, float[] K, float[] V, int[] QPos, int[] KPos)
    {
        public static Case Random(int batch, int queryLength, int keyLength, int hq, int hkv, int d, int seed,
            int[]? qPos = null, int[]? kPos = null) => new(
            AttentionLauncher.Shape(batch, queryLength, keyLength, hq, hkv, d),
            Reference.Random(batch * queryLength * hq * d, seed),
            Reference.Random(batch * keyLength * hkv * d, seed + 1),
            Reference.Random(batch * keyLength * hkv * d, seed + 2),
            qPos ?? Enumerable.Range(0, queryLength).ToArray(),
            kPos ?? Enumerable.Range(0, keyLength).ToArray());

        public float[] Run(Session device)
        {
            using var scope = device.BeginScope();
            var s = Shape;
            return Ops.Attention(
                Tensor.FromArray(device, Q, s.Batch, s.QueryLength, s.QueryHeads, s.HeadDim),
                Tensor.FromArray(device, K, s.Batch, s.KeyLength, s.KvHeads, s.HeadDim),
                Tensor.FromArray(device, V, s.Batch, s.KeyLength, s.KvHeads, s.HeadDim),
                Tensor.FromArray(device, QPos, QPos.Length), Tensor.FromArray(device, KPos, KPos.Length)).ToArray();
        }

        public double[] Expected() => HostReference.Attention(Q, K, V, QPos, KPos, Shape).Out;
    }

    public static IEnumerable<object[]> Shapes() =>
        from shape in new[]
        {
            new[] { 1, 2, 1, 8 },    // one token
            new[] { 16, 2, 2, 16 },  // exactly one CPU tile
            new[] { 17, 4, 2, 24 },  // one past a tile, grouped heads, the model's D 24
            new[] { 37, 4, 1, 32 },  // several ragged tiles, one kv head for four query heads
            new[] { 9, 2, 2, 65 },   // odd head dim
        }
        from device in new[] { "default", "wide" }
        select new object[] { device, shape[0], shape[1], shape[2], shape[3] };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void ForwardMatchesFloat64Reference(string device, int length, int hq, int hkv, int d)
    {
        var c = Case.Random(2, length, length, hq, hkv, d, seed: length * 7 + d);
        Reference.AssertClose(c.Run(TestDevice.Get(device)), c.Expected(), Tolerance);
    }

    [Theory]
    [MemberData(nameof(TestDevice.Both), MemberType = typeof(TestDevice))]
    public void QueriesForSomePositionsAttendToAllEarlierKeys(string device)
    {
        // Queries at positions 5..9 only, keys at 0..9: query i sees keys 0..5+i.
        var c = Case.Random(2, 5, 10, 4, 2, 16, seed: 3, qPos: [5, 6, 7, 8, 9]);
        Reference.AssertClose(c.Run(TestDevice.Get(device)), c.Expected(), Tolerance);
    }

    [Fact]
    public void UnorderedKeyPositionsAreMaskedByPosition()
    {
        // The mask is kPos[j] <= qPos[i] whatever order the keys come in.
        var c = Case.Random(1, 6, 7, 2, 1, 8, seed: 4, qPos: [0, 2, 3, 4, 5, 6], kPos: [3, 0, 6, 1, 5, 2, 4]);
        Reference.AssertClose(c.Run(TestDevice.Cpu), c.Expected(), Tolerance);
    }

    [Fact]
    public void QueryThatSeesNoKeyGetsZeroOutputAndZeroGradients()
    {
        var device = TestDevice.Cpu;
        using var scope = device.BeginScope();
        const int d = 8;
        var c = Case.Random(1, 2, 3, 2, 2, d, seed: 5, qPos: [1, 4], kPos: [2, 3, 4]); // query 0 sees nothing
        var q = Tensor.FromArray(device, c.Q, 1, 2, 2, d);
        var k = Tensor.FromArray(device, c.K, 1, 3, 2, d);
        var v = Tensor.FromArray(device, c.V, 1, 3, 2, d);
        foreach (var t in new[] { q, k, v }) t.RequiresGrad = true;
        var o = Ops.Attention(q, k, v, Tensor.FromArray(device, c.QPos, 2), Tensor.FromArray(device, c.KPos, 3));
        device.Tape.Backward(o, Tensor.FromArray(device, Reference.Random((int)o.Length, 6), o.Shape));
        var output = o.ToArray();
        var dq = q.Grad!.ToArray();
        Assert.All(output[..(2 * d)], x => Assert.Equal(0f, x));  // query 0, both heads
        Assert.All(dq[..(2 * d)], x => Assert.Equal(0f, x));
        Assert.Contains(dq[(2 * d)..], x => x != 0f);             // query 1 does get a gradient
        Assert.All(k.Grad!.ToArray().Concat(v.Grad!.ToArray()), x => Assert.True(float.IsFinite(x)));
        Reference.AssertClose(output, c.Expected(), Tolerance);
    }

    /// <summary>The flash path on both presets and the gemm path (query blocks of 4 and 3 rows, which t splits).</summary>
    public static IEnumerable<object[]> BothPaths() => [.. TestDevice.Both(), .. AttentionGemmTests.Devices()];

    [Theory]
    [MemberData(nameof(BothPaths))]
    public void OutputsBeforeAPositionIgnoreEverythingAfterIt(string device)
    {
        const int length = 21, t = 12, d = 8, heads = 2;
        var c = Case.Random(2, length, length, heads, heads, d, seed: 7);
        var changed = c with { Q = (float[])c.Q.Clone(), K = (float[])c.K.Clone(), V = (float[])c.V.Clone() };
        var noise = Reference.Random(c.Q.Length, 8);
        int perToken = heads * d;
        for (int b = 0; b < 2; b++)
            for (int i = t + 1; i < length; i++)
                for (int e = 0; e < perToken; e++)
                {
                    int at = (b * length + i) * perToken + e;
                    changed.Q[at] += noise[at];
                    changed.K[at] -= noise[at];
                    changed.V[at] += 2 * noise[at];
                }
        var before = c.Run(TestDevice.Get(device));
        var after = changed.Run(TestDevice.Get(device));
        for (int b = 0; b < 2; b++)
            for (int i = 0; i < length; i++)
            {
                var rowBefore = before.AsSpan((b * length + i) * perToken, perToken).ToArray();
                var rowAfter = after.AsSpan((b * length + i) * perToken, perToken).ToArray();
                if (i <= t) Assert.Equal(rowBefore, rowAfter); // bitwise
                else Assert.NotEqual(rowBefore, rowAfter);     // the change did reach later tokens
            }
    }

    [Theory]
    [MemberData(nameof(TestDevice.Both), MemberType = typeof(TestDevice))]
    public void BackwardIsBitwiseDeterministic(string device)
    {
        var first = Gradients(TestDevice.Get(device));
        var second = Gradients(TestDevice.Get(device));
        for (int i = 0; i < first.Length; i++) Assert.Equal(first[i], second[i]);
        Assert.All(first, g => Assert.Contains(g, x => x != 0f));
    }

    /// <summary>dq, dk, dv of one backward pass with fresh gradient buffers.</summary>
    private static float[][] Gradients(Session device)
    {
        const int batch = 2, length = 19, hq = 4, hkv = 2, d = 12;
        using var scope = device.BeginScope();
        var q = Tensor.FromArray(device, Reference.Random(batch * length * hq * d, 11), batch, length, hq, d);
        var k = Tensor.FromArray(device, Reference.Random(batch * length * hkv * d, 12), batch, length, hkv, d);
        var v = Tensor.FromArray(device, Reference.Random(batch * length * hkv * d, 13), batch, length, hkv, d);
        foreach (var t in new[] { q, k, v }) t.RequiresGrad = true;
        var o = Ops.CausalAttention(q, k, v);
        device.Tape.Backward(o, Tensor.FromArray(device, Reference.Random((int)o.Length, 14), o.Shape));
        return [q.Grad!.ToArray(), k.Grad!.ToArray(), v.Grad!.ToArray()];
    }
}
