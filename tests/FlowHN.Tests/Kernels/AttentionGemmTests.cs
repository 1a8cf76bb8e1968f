using FlowHN.Autograd;
using FlowHN.Diagnostics;
using FlowHN.Kernels;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Tests.Kernels;

/// <summary>
/// The gemm attention path (query blocks of batched matrix products) against the float64 reference and against
/// the flash path on the same preset, with query blocks of 3-5 rows so every shape has ragged blocks; the mask by
/// position, causality, determinism, gradients, and FLOP accounting.
/// </summary>
public class AttentionGemmTests
{
    private const double ReferenceTolerance = 1e-4;
    /// <summary>Both paths compute the same function in fp32; they must agree to this (relative, by norm).</summary>
    private const double PathTolerance = 1e-5;

    /// <summary>Each gemm preset with the flash preset of the same geometry.</summary>
    private static readonly Dictionary<string, string> FlashTwin = new() { ["gemm"] = "default", ["gemm-wide"] = "wide" };

    private sealed record Case(AttentionShape Shape, float[] Q, float[] K, float[] V, int[] QPos, int[] KPos, float[] DO)
    {
        public static Case Random(int batch, int lq, int lk, int hq, int hkv, int d, int seed, int[]? qPos = null, int[]? kPos = null)
        {
            var s = AttentionLauncher.Shape(batch, lq, lk, hq, hkv, d);
            return new Case(s, Reference.Random(batch * lq * hq * d, seed), Reference.Random(batch * lk * hkv * d, seed + 1),
                Reference.Random(batch * lk * hkv * d, seed + 2), qPos ?? Enumerable.Range(0, lq).ToArray(),
                kPos ?? Enumerable.Range(0, lk).ToArray(), Reference.Random(batch * lq * hq * d, seed + 3));
        }

        /// <summary>Output, dq, dk, dv of one forward and backward through Ops.Attention.</summary>
        public float[][] Run(Session device)
        {
            using var scope = device.BeginScope();
            var s = Shape;
            var q = Tensor.FromArray(device, Q, s.Batch, s.QueryLength, s.QueryHeads, s.HeadDim);
            var k = Tensor.FromArray(device, K, s.Batch, s.KeyLength, s.KvHeads, s.HeadDim);
            var v = Tensor.FromArray(device, V, s.Batch, s.KeyLength, s.KvHeads, s.HeadDim);
            foreach (var t in new[] { q, k, v }) t.RequiresGrad = true;
            var o = Ops.Attention(q, k, v, Tensor.FromArray(device, QPos, QPos.Length), Tensor.FromArray(device, KPos, KPos.Length));
            device.Tape.Backward(o, Tensor.FromArray(device, DO, o.Shape));
            return [o.ToArray(), q.Grad!.ToArray(), k.Grad!.ToArray(), v.Grad!.ToArray()];
        }

        public double[][] Expected()
        {
            var (o, _) = HostReference.Attention(Q, K, V, QPos, KPos, Shape);
            var (dq, dk, dv) = HostReference.AttentionBackward(Q, K, V, QPos, KPos, DO, Shape);
            return [o, dq, dk, dv];
        }

        /// <summary>The gemm path on <paramref name="device"/> against float64 and against the flash path of its twin.</summary>
        public void AssertBothPaths(string device)
        {
            var gemm = Run(TestDevice.Get(device));
            var flash = Run(TestDevice.Get(FlashTwin[device]));
            var expected = Expected();
            for (int i = 0; i < gemm.Length; i++)
            {
                Reference.AssertClose(gemm[i], expected[i], ReferenceTolerance);
                // An exactly-zero result (dK with one visible key) has no scale to be relative to: both paths
                // must give rounding noise only. Otherwise they agree to 1e-5 relative.
                if (expected[i].All(x => Math.Abs(x) < 1e-12))
                    Assert.All(gemm[i].Concat(flash[i]), x => Assert.True(Math.Abs(x) < 1e-5, $"{x} is not ~0"));
                else Reference.AssertClose(gemm[i], Reference.ToDouble(flash[i]), PathTolerance);
            }
        }
    }

    public static IEnumerable<object[]> Shapes() =>
        from shape in new[]
        {
            new[] { 1, 2, 1, 8 },    // one token
            new[] { 16, 2, 2, 16 },  // blocks of 4 fit exactly, not blocks of 3 or 5
            new[] { 17, 4, 2, 24 },  // grouped heads, the model's D 24
            new[] { 37, 4, 1, 32 },  // one kv head for four query heads, many ragged blocks
            new[] { 9, 2, 2, 65 },   // odd head dim
        }
        from device in new[] { "gemm", "gemm-wide" }
        select new object[] { device, shape[0], shape[1], shape[2], shape[3] };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void ForwardAndBackwardMatchFloat64AndTheFlashPath(string device, int length, int hq, int hkv, int d) =>
        Case.Random(2, length, length, hq, hkv, d, seed: length * 5 + d).AssertBothPaths(device);

    public static IEnumerable<object[]> Devices() => [["gemm"], ["gemm-wide"]];

    [Theory]
    [MemberData(nameof(Devices))]
    public void QueriesForSomePositionsAttendToAllEarlierKeys(string device) =>
        Case.Random(2, 5, 10, 4, 2, 16, seed: 3, qPos: [5, 6, 7, 8, 9]).AssertBothPaths(device);

    [Theory]
    [MemberData(nameof(Devices))]
    public void RoutedTokensWithUnorderedPositionsAreMaskedByPosition(string device) =>
        // Routed tokens: keys in any order, queries at a subset; blocks of queries whose key ranges differ.
        Case.Random(1, 6, 7, 2, 1, 8, seed: 4, qPos: [0, 2, 3, 6, 4, 5], kPos: [3, 0, 6, 1, 5, 2, 4]).AssertBothPaths(device);

    [Fact]
    public void QueriesThatSeeNoKeyGetZeroOutputZeroGradientsAndMinusInfinityLse()
    {
        // Queries 0-3 (the whole first block of 4) see nothing, query 4 sees key 0 only.
        var c = Case.Random(1, 6, 3, 2, 2, 8, seed: 5, qPos: [0, 1, 0, 1, 2, 9], kPos: [2, 3, 4]);
        var result = c.Run(TestDevice.Get("gemm"));
        int perQuery = 2 * 8;
        Assert.All(result[0][..(4 * perQuery)], x => Assert.Equal(0f, x));
        Assert.All(result[1][..(4 * perQuery)], x => Assert.Equal(0f, x));
        Assert.Contains(result[1][(4 * perQuery)..], x => x != 0f);
        c.AssertBothPaths("gemm");
        var lse = Lse(TestDevice.Get("gemm"), c);
        Assert.All(lse.Where((_, i) => i % 6 < 4), x => Assert.Equal(float.NegativeInfinity, x));
        Assert.All(lse.Where((_, i) => i % 6 >= 4), x => Assert.True(float.IsFinite(x)));
    }

    [Theory]
    [InlineData("default")]
    [InlineData("warp32")] // a GPU's geometry: 32 lanes per softmax row
    public void EitherBackwardFollowsEitherForward(string preset)
    {
        // Same lse layout and output: the gemm backward after the flash forward, and the flash backward after the
        // gemm forward, give the gradients of the flash forward and backward; so do gemm forward and backward.
        var device = TestDevice.Get(preset);
        var c = Case.Random(2, 11, 11, 4, 2, 24, seed: 21, qPos: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        var flash = Gradients(device, c, gemmForward: false, gemmBackward: false);
        foreach (var (forward, backward) in new[] { (false, true), (true, false), (true, true) })
        {
            var mixed = Gradients(device, c, forward, backward);
            for (int i = 0; i < flash.Length; i++) Reference.AssertClose(mixed[i], Reference.ToDouble(flash[i]), PathTolerance);
            if (forward && backward)
                for (int i = 0; i < flash.Length; i++) Reference.AssertClose(mixed[i], c.Expected()[i], ReferenceTolerance);
        }
    }

    [Theory]
    [MemberData(nameof(Devices))]
    public void BackwardIsBitwiseDeterministic(string device)
    {
        var c = Case.Random(2, 19, 19, 4, 2, 12, seed: 11);
        var first = c.Run(TestDevice.Get(device));
        var second = c.Run(TestDevice.Get(device));
        for (int i = 0; i < first.Length; i++) Assert.Equal(first[i], second[i]);
        Assert.All(first, g => Assert.Contains(g, x => x != 0f));
    }

    [Fact]
    public void GradientsPassAFiniteDifferenceCheck()
    {
        var device = TestDevice.Get("gemm");
        Tensor Input(int seed, params int[] shape)
        {
            var t = Tensor.FromArray(device, Reference.Random((int)Tensor.ShapeLength(shape), seed), shape);
            t.RequiresGrad = true;
            return t;
        }
        var q = Input(1, 2, 7, 4, 5);
        var k = Input(2, 2, 9, 2, 5);
        var v = Input(3, 2, 9, 2, 5);
        using var qPos = Tensor.FromArray(device, [2, 3, 4, 5, 6, 7, 8], 7);
        using var kPos = Tensor.FromArray(device, Enumerable.Range(0, 9).ToArray(), 9);
        var results = GradCheck.Run(device, () => Ops.Attention(q, k, v, qPos, kPos), [q, k, v]);
        Assert.Equal(3, results.Count);
        foreach (var r in results) Assert.True(r.RelativeError < GradientAssert.Tolerance, r.ToString());
        foreach (var t in new[] { q, k, v }) t.Dispose();
    }

    [Fact]
    public void ModelFlopsAreTheSameForBothPathsAndTheProductsAreCountedAsLaunched()
    {
        var c = Case.Random(2, 10, 10, 4, 2, 8, seed: 31);
        var (flash, gemm) = (TestDevice.Cpu.Runtime.Counters, TestDevice.Get("gemm").Runtime.Counters);
        flash.Reset();
        gemm.Reset();
        c.Run(TestDevice.Cpu);
        c.Run(TestDevice.Get("gemm"));
        // Visible pairs: 55 per head and batch row; 4 D FLOPs each forward, twice that backward.
        double visible = 3 * 4.0 * 8 * 4 * 2 * 55;
        Assert.Equal(visible, flash.ModelFlops);
        Assert.Equal(visible, gemm.ModelFlops);
        Assert.Equal(0, flash.MatmulFlops);
        // The products computed every key of a block up to its last query (blocks of 4: 4x4, 4x8, 2x10 keys).
        double launched = 2.0 * 8 * 4 * 2 * (4 * 4 + 4 * 8 + 2 * 10) * (2 + 5); // S, PV forward; S, dV, dP, dQ, dK
        Assert.Equal(launched, gemm.MatmulFlops);
        Assert.Equal(launched, gemm.AttentionMatmulFlops);
    }

    [Fact]
    public void AutoRunsFlashOnTheCpuAccelerator()
    {
        Assert.False(TestDevice.Cpu.GemmAttention);
        Assert.True(TestDevice.Get("gemm").GemmAttention);
        Assert.Equal("flash kernels", TestDevice.Cpu.AttentionPath);
        Assert.StartsWith("gemm (query blocks of 4 rows", TestDevice.Get("gemm").AttentionPath);
        Assert.Equal(AttentionPathKind.Gemm, DeviceOptions.ParseAttention("GEMM"));
        var error = Assert.Throws<UserException>(() => DeviceOptions.ParseAttention("cudnn"));
        Assert.Contains("auto, flash, gemm", error.Message);
    }

    private static float[] Lse(Session device, Case c)
    {
        using var scope = device.BeginScope();
        var s = c.Shape;
        var lse = Tensor.Empty(device, [s.QueryRows]);
        var o = Tensor.Empty(device, [c.Q.Length]);
        device.Kernels.AttentionGemm.Forward(s, Inputs(device, c), c.QPos, c.KPos, o.View, lse.View);
        return lse.ToArray();
    }

    private static AttentionInputs Inputs(Session device, Case c) => new()
    {
        Q = Tensor.FromArray(device, c.Q, c.Q.Length).View, K = Tensor.FromArray(device, c.K, c.K.Length).View,
        V = Tensor.FromArray(device, c.V, c.V.Length).View,
        QueryPositions = Tensor.FromArray(device, c.QPos, c.QPos.Length).IntView,
        KeyPositions = Tensor.FromArray(device, c.KPos, c.KPos.Length).IntView,
    };

    /// <summary>Output, dq, dk, dv with the chosen launcher for each direction (blocks of 3 query rows for gemm).</summary>
    private static float[][] Gradients(Session device, Case c, bool gemmForward, bool gemmBackward)
    {
        using var scope = device.BeginScope();
        var s = c.Shape;
        var inputs = Inputs(device, c);
        var (o, lse, delta) = (Tensor.Empty(device, [c.Q.Length]), Tensor.Empty(device, [s.QueryRows]), Tensor.Empty(device, [s.QueryRows]));
        if (gemmForward) device.Kernels.AttentionGemm.Forward(s, inputs, c.QPos, c.KPos, o.View, lse.View, queryBlock: 3);
        else device.Kernels.Attention.Forward(s, inputs, o.View, lse.View);
        var dq = Tensor.FromArray(device, new float[c.Q.Length], c.Q.Length);
        var dk = Tensor.FromArray(device, new float[c.K.Length], c.K.Length);
        var dv = Tensor.FromArray(device, new float[c.V.Length], c.V.Length);
        var grads = new AttentionGradients { DQ = dq.View, DK = dk.View, DV = dv.View };
        var dO = Tensor.FromArray(device, c.DO, c.DO.Length);
        if (gemmBackward)
            device.Kernels.AttentionGemm.Backward(s, inputs, c.QPos, c.KPos, o.View, lse.View, dO.View, delta.View, grads, queryBlock: 3);
        else device.Kernels.Attention.Backward(s, inputs, o.View, lse.View, dO.View, delta.View, grads);
        return [o.ToArray(), dq.ToArray(), dk.ToArray(), dv.ToArray()];
    }
}
