using FlowHN.Kernels;
using FlowHN.Runtime;
using FlowHN.Tensors;
using MathNet.Numerics.Distributions;
using static FlowHN.Diagnostics.HostReference;
using FlowHN.Autograd;

namespace FlowHN.Diagnostics;

/// <summary>
/// Every kernel on random inputs against its float64 host reference, on whatever device is given. This is
/// what <c>flowhn check</c> runs (so a GPU machine without the SDK can validate the CUDA path) and what the
/// tests assert on the CPU accelerator.
/// </summary>
public static partial class KernelChecks
{
    public const double ElementwiseTolerance = 1e-5;
    public const double ReductionTolerance = 1e-4;

    private sealed record Check(string Name, double Tolerance, Func<Session, Random, double> Run);

    private static readonly Check[] All =
    [
        new("gemm.nn", ReductionTolerance, (d, r) => Gemm(d, r, false, false, tiled: false)),
        new("gemm.nt", ReductionTolerance, (d, r) => Gemm(d, r, false, true, tiled: false)),
        new("gemm.tn", ReductionTolerance, (d, r) => Gemm(d, r, true, false, tiled: false)),
        new("gemm.batched-accumulate", ReductionTolerance, (d, r) => GemmBatched(d, r, tiled: false)),
        new("gemm.ilgpu.nn", ReductionTolerance, (d, r) => Gemm(d, r, false, false, tiled: true)),
        new("gemm.ilgpu.nt", ReductionTolerance, (d, r) => Gemm(d, r, false, true, tiled: true)),
        new("gemm.ilgpu.tn", ReductionTolerance, (d, r) => Gemm(d, r, true, false, tiled: true)),
        new("gemm.ilgpu.batched-accumulate", ReductionTolerance, (d, r) => GemmBatched(d, r, tiled: true)),
        new("silu", ElementwiseTolerance, (d, r) => Unary(d, r, UnaryOp.Silu, Silu, false)),
        new("silu.backward", ElementwiseTolerance, (d, r) => Unary(d, r, UnaryOp.Silu, SiluDerivative, true)),
        new("softplus", ElementwiseTolerance, (d, r) => Unary(d, r, UnaryOp.Softplus, Softplus, false)),
        new("softplus.backward", ElementwiseTolerance, (d, r) => Unary(d, r, UnaryOp.Softplus, Sigmoid, true)),
        new("exp", ElementwiseTolerance, (d, r) => Unary(d, r, UnaryOp.Exp, Math.Exp, false)),
        new("exp.backward", ElementwiseTolerance, (d, r) => Unary(d, r, UnaryOp.Exp, Math.Exp, true)),
        new("add-scale", ElementwiseTolerance, LinearCombination),
        new("mul", ElementwiseTolerance, Multiply),
        new("swiglu", ElementwiseTolerance, (d, r) => SwiGlu(d, r, backward: false)),
        new("swiglu.backward", ElementwiseTolerance, (d, r) => SwiGlu(d, r, backward: true)),
        new("strided-copy", ElementwiseTolerance, StridedCopy),
        new("reduce.sum", ReductionTolerance, (d, r) => Reduce(d, r, ReductionKind.Sum)),
        new("reduce.sum-of-squares", ReductionTolerance, (d, r) => Reduce(d, r, ReductionKind.SumOfSquares)),
        new("reduce.max", ReductionTolerance, (d, r) => Reduce(d, r, ReductionKind.Max)),
        new("rmsnorm", ReductionTolerance, (d, r) => RmsNormCheck(d, r, backward: false)),
        new("rmsnorm.backward", ReductionTolerance, (d, r) => RmsNormCheck(d, r, backward: true)),
        new("add-rmsnorm", ReductionTolerance, (d, r) => AddRmsNormCheck(d, r, backward: false)),
        new("add-rmsnorm.backward", ReductionTolerance, (d, r) => AddRmsNormCheck(d, r, backward: true)),
        new("embedding", ElementwiseTolerance, (d, r) => EmbeddingCheck(d, r, backward: false)),
        new("embedding.backward", ReductionTolerance, (d, r) => EmbeddingCheck(d, r, backward: true)),
        new("cross-entropy", ReductionTolerance, (d, r) => CrossEntropyCheck(d, r, backward: false)),
        new("cross-entropy.backward", ReductionTolerance, (d, r) => CrossEntropyCheck(d, r, backward: true)),
        new("attention", ReductionTolerance, (d, r) => AttentionCheck(d, r, backward: false)),
        new("attention.backward", ReductionTolerance, (d, r) => AttentionCheck(d, r, backward: true)),
        new("attention.gemm", ReductionTolerance, (d, r) => AttentionGemmCheck(d, r, backward: false)),
        new("attention.gemm.backward", ReductionTolerance, (d, r) => AttentionGemmCheck(d, r, backward: true)),
        new("rope", ElementwiseTolerance, (d, r) => RopeCheck(d, r, backward: false)),
        new("rope.backward", ElementwiseTolerance, (d, r) => RopeCheck(d, r, backward: true)),
        new("routing.gather", ElementwiseTolerance, RoutingGatherCheck),
        new("routing.scatter-add", ElementwiseTolerance, RoutingScatterAddCheck),
        new("routing.merge", ElementwiseTolerance, RoutingMergeCheck),
        new("causal-conv", ElementwiseTolerance, (d, r) => ConvCheck(d, r, backward: false)),
        new("causal-conv.backward", ReductionTolerance, (d, r) => ConvCheck(d, r, backward: true)),
        new("selective-scan", ElementwiseTolerance, (d, r) => ScanCheck(d, r, backward: false)),
        new("selective-scan.backward", ReductionTolerance, (d, r) => ScanCheck(d, r, backward: true)),
        new("ssd", ReductionTolerance, (d, r) => SsdCheck(d, r, backward: false)),
        new("ssd.backward", ReductionTolerance, (d, r) => SsdCheck(d, r, backward: true)),
        new("adamw", ElementwiseTolerance, AdamWCheck),
        new("clip-factor", ElementwiseTolerance, ClipFactorCheck),
    ];

    public static IReadOnlyList<string> Names => All.Select(c => c.Name).ToList();

    public static KernelCheckResult Run(Session device, string name, int seed = 1234)
    {
        var check = All.FirstOrDefault(c => c.Name == name) ?? throw new ArgumentException($"No kernel check named '{name}'.");
        try
        {
            using var scope = device.BeginScope();
            double error = check.Run(device, new Random(seed));
            return new KernelCheckResult(check.Name, error, check.Tolerance);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return new KernelCheckResult(check.Name, double.NaN, check.Tolerance, $"{e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>
    /// Tests only: every kernel result is scaled by (1 + this) before it is compared, as a subtly wrong kernel's
    /// would be, to show that each check catches it. Zero in normal use.
    /// </summary>
    [ThreadStatic] internal static double ResultSkew;

    // ---- helpers ------------------------------------------------------------------------------------

    /// <summary>||actual - expected|| / ||expected|| (see <see cref="HostReference.RelativeError"/>); every check compares through here.</summary>
    private static double RelativeError(IReadOnlyList<float> actual, IReadOnlyList<double> expected) =>
        HostReference.RelativeError(ResultSkew == 0 ? actual : actual.Select(v => (float)(v * (1 + ResultSkew))).ToArray(), expected);

    private static float[] Randoms(Random random, int n, double scale = 1) =>
        Normal.Samples(random, 0, scale).Take(n).Select(x => (float)x).ToArray();

    private static Tensor Up(Session d, float[] data, params int[] shape) => Tensor.FromArray(d, data, shape);

    private static double[] Doubles(float[] x) => x.Select(v => (double)v).ToArray();

    /// <summary>Shapes with ragged edges everywhere; larger on a GPU so real tiles are exercised.</summary>
    private static (int M, int N, int K) GemmSize(Session d) => d.Runtime.IsCuda ? (259, 197, 173) : (37, 29, 23);

    // ---- checks ---------------------------------------------------------------------------------------

    private static double Gemm(Session d, Random random, bool transposeA, bool transposeB, bool tiled)
    {
        var (m, n, k) = GemmSize(d);
        var a = Randoms(random, m * k);
        var b = Randoms(random, k * n);
        var ta = transposeA ? Up(d, Transpose(a, m, k), k, m).TransposeView(0, 1) : Up(d, a, m, k);
        var tb = transposeB ? Up(d, Transpose(b, k, n), n, k).TransposeView(0, 1) : Up(d, b, k, n);
        var c = Tensor.Empty(d, [m, n]);
        RunGemm(d, ta, tb, c, 1f, 0f, tiled);
        return RelativeError(c.ToArray(), MatMul(a, b, m, n, k));
    }

    private static double GemmBatched(Session d, Random random, bool tiled)
    {
        var (m, n, k) = GemmSize(d);
        const int batch = 3;
        var a = Randoms(random, batch * m * k);
        var b = Randoms(random, batch * k * n);
        var c0 = Randoms(random, batch * m * n);
        var c = Up(d, c0, batch, m, n);
        RunGemm(d, Up(d, a, batch, m, k), Up(d, b, batch, k, n), c, 0.5f, 1f, tiled);
        var expected = new double[batch * m * n];
        for (int i = 0; i < batch; i++)
        {
            var product = MatMul(a[(i * m * k)..((i + 1) * m * k)], b[(i * k * n)..((i + 1) * k * n)], m, n, k);
            for (int j = 0; j < m * n; j++) expected[i * m * n + j] = 0.5 * product[j] + c0[i * m * n + j];
        }
        return RelativeError(c.ToArray(), expected);
    }

    private static void RunGemm(Session d, Tensor a, Tensor b, Tensor c, float alpha, float beta, bool tiled)
    {
        var gemm = d.Kernels.Gemm;
        if (!tiled)
        {
            gemm.MatMul(a, b, c, alpha, beta);
            return;
        }
        var shape = TensorLaunches.DescribeMatMul(a, b, c, alpha, beta, out int batch);
        gemm.RunTiled(a.StridedView, b.StridedView, c.View, shape, batch);
    }

    private static int ElementCount(Session d) => d.Runtime.IsCuda ? 1 << 20 : 4099;

    private static double Unary(Session d, Random random, UnaryOp op, Func<double, double> reference, bool backward)
    {
        int n = ElementCount(d);
        var x = Randoms(random, n, 3);
        var k = d.Kernels.Elementwise;
        if (!backward)
        {
            var y = Tensor.Empty(d, [n]);
            k.Map(op, Up(d, x, n).View, y.View);
            return RelativeError(y.ToArray(), x.Select(v => reference(v)).ToArray());
        }
        var dy = Randoms(random, n);
        var dx0 = Randoms(random, n);
        var dx = Up(d, dx0, n);
        k.MapBackward(op, Up(d, x, n).View, Up(d, dy, n).View, dx.View);
        return RelativeError(dx.ToArray(), x.Select((v, i) => dx0[i] + reference(v) * dy[i]).ToArray());
    }

    private static double LinearCombination(Session d, Random random)
    {
        int n = ElementCount(d);
        var a = Randoms(random, n);
        var b = Randoms(random, n);
        var y = Tensor.Empty(d, [n]);
        d.Kernels.Elementwise.LinearCombination(Up(d, a, n).View, Up(d, b, n).View, y.View, 0.75f, -1.5f);
        return RelativeError(y.ToArray(), a.Select((v, i) => 0.75 * v - 1.5 * b[i]).ToArray());
    }

    private static double Multiply(Session d, Random random)
    {
        int n = ElementCount(d);
        var a = Randoms(random, n);
        var b = Randoms(random, n);
        var y0 = Randoms(random, n);
        var y = Tensor.Empty(d, [n]);
        var acc = Up(d, y0, n);
        d.Kernels.Elementwise.Multiply(Up(d, a, n).View, Up(d, b, n).View, y.View);
        d.Kernels.Elementwise.MultiplyAccumulate(Up(d, a, n).View, Up(d, b, n).View, acc.View);
        var product = a.Select((v, i) => (double)v * b[i]).ToArray();
        return Math.Max(RelativeError(y.ToArray(), product),
            RelativeError(acc.ToArray(), product.Select((p, i) => p + y0[i]).ToArray()));
    }

    private static double SwiGlu(Session d, Random random, bool backward)
    {
        int n = ElementCount(d);
        var a = Randoms(random, n, 2);
        var b = Randoms(random, n);
        var k = d.Kernels.Elementwise;
        if (!backward)
        {
            var y = Tensor.Empty(d, [n]);
            k.SwiGlu(Up(d, a, n).View, Up(d, b, n).View, y.View);
            return RelativeError(y.ToArray(), a.Select((v, i) => Silu(v) * b[i]).ToArray());
        }
        var dy = Randoms(random, n);
        var da = Tensor.Zeros(d, [n]);
        var db = Tensor.Zeros(d, [n]);
        k.SwiGluBackward(Up(d, a, n).View, Up(d, b, n).View, Up(d, dy, n).View, da.View, db.View);
        return Math.Max(
            RelativeError(da.ToArray(), a.Select((v, i) => dy[i] * b[i] * SiluDerivative(v)).ToArray()),
            RelativeError(db.ToArray(), a.Select((v, i) => dy[i] * Silu(v)).ToArray()));
    }

    private static double StridedCopy(Session d, Random random)
    {
        int rows = 37, cols = 19;
        var x = Randoms(random, rows * cols);
        var y = Tensor.Empty(d, [cols, rows]);
        d.Kernels.Elementwise.StridedCopy(Up(d, x, rows, cols).TransposeView(0, 1), y);
        return RelativeError(y.ToArray(), Doubles(Transpose(x, rows, cols)));
    }

    private static double Reduce(Session d, Random random, ReductionKind kind)
    {
        int n = d.Runtime.IsCuda ? 3_000_017 : 10_007;
        var x = Randoms(random, n);
        var y = Tensor.Empty(d, [1]);
        d.Kernels.Reduce.Reduce(kind, Up(d, x, n).View, y.View);
        double expected = kind switch
        {
            ReductionKind.Sum => x.Sum(v => (double)v),
            ReductionKind.SumOfSquares => x.Sum(v => (double)v * v),
            _ => x.Max(),
        };
        return RelativeError(y.ToArray(), [expected]);
    }

    /// <summary>
    /// Row shapes for the row kernels. On a GPU each row length picks a group size (128 threads below 1,024
    /// columns, 256 below 4,096, then 512) and rows beyond 32 groups per multiprocessor are strided over: 768 (the
    /// 135M width), 2,048 (1b) with few rows, and more rows than any GPU's grid cap (8,193, one batch of 135M tokens).
    /// </summary>
    private static (int Rows, int Cols)[] NormSizes(Session d) => d.Runtime.IsCuda ? [(515, 768), (67, 2048), (8193, 768)] : [(13, 37)];

    private static double RmsNormCheck(Session d, Random random, bool backward) =>
        NormSizes(d).Max(size => RmsNormCase(d, random, size.Rows, size.Cols, backward));

    private static double AddRmsNormCheck(Session d, Random random, bool backward) =>
        NormSizes(d).Max(size => AddRmsNormCase(d, random, size.Rows, size.Cols, backward));

    private static double RmsNormCase(Session d, Random random, int rows, int cols, bool backward)
    {
        const float eps = 1e-6f;
        var x = Randoms(random, rows * cols);
        var w = Randoms(random, cols);
        var y = Tensor.Empty(d, [rows, cols]);
        var inv = Tensor.Empty(d, [rows]);
        var norm = d.Kernels.Norm;
        var xt = Up(d, x, rows, cols);
        var wt = Up(d, w, cols);
        norm.RmsNormForward(rows, cols, xt.View, wt.View, y.View, inv.View, eps);
        if (!backward) return RelativeError(y.ToArray(), RmsNorm(x, w, rows, cols, eps).Y);
        var dy = Randoms(random, rows * cols);
        var dx = Tensor.Zeros(d, [rows, cols]);
        var dw = Tensor.Zeros(d, [cols]);
        norm.RmsNormBackward(rows, cols, xt.View, wt.View, Up(d, dy, rows, cols).View, inv.View, dx.View, dw.View);
        var (dxRef, dwRef) = RmsNormBackward(x, w, dy, rows, cols, eps);
        return Math.Max(RelativeError(dx.ToArray(), dxRef), RelativeError(dw.ToArray(), dwRef));
    }

    /// <summary>The fused residual add + RMSNorm against the float64 norm of x + y (and its gradients).</summary>
    private static double AddRmsNormCase(Session d, Random random, int rows, int cols, bool backward)
    {
        const float eps = 1e-6f;
        var x = Randoms(random, rows * cols);
        var y = Randoms(random, rows * cols);
        var w = Randoms(random, cols);
        var sumValues = x.Select((v, i) => v + y[i]).ToArray();
        var sum = Tensor.Empty(d, [rows, cols]);
        var normed = Tensor.Empty(d, [rows, cols]);
        var inv = Tensor.Empty(d, [rows]);
        var norm = d.Kernels.Norm;
        var wt = Up(d, w, cols);
        norm.AddRmsNormForward(rows, cols, Up(d, x, rows, cols).View, Up(d, y, rows, cols).View, wt.View, sum.View, normed.View, inv.View, eps);
        if (!backward)
            return Math.Max(RelativeError(sum.ToArray(), Doubles(sumValues)), RelativeError(normed.ToArray(), RmsNorm(sumValues, w, rows, cols, eps).Y));
        var dSum = Randoms(random, rows * cols);
        var dNormed = Randoms(random, rows * cols);
        var dx = Tensor.Zeros(d, [rows, cols]);
        var dy = Tensor.Zeros(d, [rows, cols]);
        var dw = Tensor.Zeros(d, [cols]);
        norm.AddRmsNormBackward(rows, cols, sum.View, wt.View, Up(d, dSum, rows, cols).View, Up(d, dNormed, rows, cols).View, inv.View,
            dx.View, dy.View, dw.View);
        var (dxRef, dwRef) = RmsNormBackward(sumValues, w, dNormed, rows, cols, eps);
        var expected = dxRef.Select((v, i) => v + dSum[i]).ToArray();
        return Math.Max(Math.Max(RelativeError(dx.ToArray(), expected), RelativeError(dy.ToArray(), expected)), RelativeError(dw.ToArray(), dwRef));
    }

    /// <summary>On a GPU the gradient's group is the row width up to 256 threads: a model width and a narrow one.</summary>
    private static (int Dim, int Tokens)[] EmbeddingSizes(Session d) => d.Runtime.IsCuda ? [(768, 4099), (40, 77)] : [(24, 67)];

    private static double EmbeddingCheck(Session d, Random random, bool backward) =>
        EmbeddingSizes(d).Max(size => EmbeddingCase(d, random, size.Dim, size.Tokens, backward));

    private static double EmbeddingCase(Session d, Random random, int dim, int tokens, bool backward)
    {
        const int vocab = 53;
        var ids = Enumerable.Range(0, tokens).Select(_ => random.Next(vocab)).ToArray();
        var table = Randoms(random, vocab * dim);
        using var index = TokenIndex.FromHost(d, ids, tokens);
        var k = d.Kernels.Embedding;
        if (!backward)
        {
            var y = Tensor.Empty(d, [tokens, dim]);
            k.Gather(tokens, dim, index.Ids.IntView, Up(d, table, vocab, dim).View, y.View);
            return RelativeError(y.ToArray(), ids.SelectMany(id => table[(id * dim)..((id + 1) * dim)]).Select(v => (double)v).ToArray());
        }
        var dy = Randoms(random, tokens * dim);
        var dTable0 = Randoms(random, vocab * dim);
        var dTable = Up(d, dTable0, vocab, dim);
        k.ScatterAdd(index.DistinctCount, dim, index.DistinctIds.IntView, index.Starts.IntView, index.Order.IntView,
            Up(d, dy, tokens, dim).View, dTable.View);
        var expected = Doubles(dTable0);
        for (int t = 0; t < tokens; t++)
            for (int j = 0; j < dim; j++) expected[ids[t] * dim + j] += dy[t * dim + j];
        return RelativeError(dTable.ToArray(), expected);
    }

    /// <summary>
    /// GPT-2's vocabulary in rows padded to 50,304 floats as the LM head lays them out (512-thread rows on a GPU),
    /// a 256-thread row length, and a byte-sized vocabulary with more rows than the GPU's grid cap, so rows are
    /// strided over; on the CPU a padded and an unpadded one. Rows are (rows, vocab, row stride).
    /// </summary>
    private static (int Rows, int Vocab, int Stride)[] CrossEntropySizes(Session d) => d.Runtime.IsCuda
        ? [(257, 50257, 50304), (67, 1500, 1500), (8193, 97, 128)]
        : [(11, 97, 128), (6, 50, 50)];

    private static double CrossEntropyCheck(Session d, Random random, bool backward) =>
        CrossEntropySizes(d).Max(size => CrossEntropyCase(d, random, size.Rows, size.Vocab, size.Stride, backward));

    /// <summary>
    /// The forward's per-row losses and mean, or the backward written over the logits (the training path), against
    /// the float64 reference. Padding columns hold NaN: a kernel that reads one turns the result non-finite (a
    /// failure), and the backward must leave them as they are.
    /// </summary>
    private static double CrossEntropyCase(Session d, Random random, int rows, int vocab, int stride, bool backward)
    {
        const int ignore = -1;
        var logits = Randoms(random, rows * vocab, 2);
        var targets = Enumerable.Range(0, rows).Select(r => r % 5 == 3 ? ignore : random.Next(vocab)).ToArray();
        var laidOut = new float[rows * stride];
        Array.Fill(laidOut, float.NaN);
        for (int r = 0; r < rows; r++) Array.Copy(logits, r * vocab, laidOut, r * stride, vocab);
        var rowLoss = Tensor.Empty(d, [rows]);
        var lse = Tensor.Empty(d, [rows]);
        var loss = Tensor.Empty(d, [2]);
        var logitsT = Up(d, laidOut, rows, stride);
        var targetsT = Tensor.FromArray(d, targets, rows);
        var k = d.Kernels.CrossEntropy;
        k.Forward(rows, vocab, stride, logitsT.View, targetsT.IntView, rowLoss.View, lse.View, loss.View, ignore);
        var (lossRef, rowLossRef, gradRef) = CrossEntropy(logits, targets, vocab, ignore);
        if (!backward) return Math.Max(RelativeError([loss.ToArray()[0]], [lossRef]), RelativeError(rowLoss.ToArray(), rowLossRef));
        var dLoss = Up(d, [1f], 1);
        k.Backward(rows, vocab, stride, logitsT.View, targetsT.IntView, lse.View, loss.View, dLoss.View, logitsT.View, stride, ignore,
            accumulate: false);
        var written = logitsT.ToArray();
        var grad = new float[rows * vocab];
        for (int r = 0; r < rows; r++)
        {
            Array.Copy(written, r * stride, grad, r * vocab, vocab);
            for (int v = vocab; v < stride; v++)
                if (!float.IsNaN(written[r * stride + v])) return double.PositiveInfinity; // a padding column was written
        }
        return RelativeError(grad, gradRef);
    }

    private static double AdamWCheck(Session d, Random random)
    {
        int n = ElementCount(d);
        var p = Randoms(random, n);
        var g = Randoms(random, n);
        var m = Randoms(random, n, 0.1);
        var v = Randoms(random, n, 0.1).Select(Math.Abs).ToArray();
        const int step = 3;
        const double lr = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, decay = 0.1, gradScale = 0.5;
        var pt = Up(d, p, n);
        d.Kernels.Optim.AdamW(pt.View, Up(d, g, n).View, Up(d, m, n).View, Up(d, v, n).View, Up(d, [(float)gradScale], 1).View,
            new AdamWStep
            {
                LearningRate = (float)lr, Beta1 = (float)beta1, Beta2 = (float)beta2, Epsilon = (float)eps, WeightDecay = (float)decay,
                BiasCorrection1 = (float)(1 - Math.Pow(beta1, step)), BiasCorrection2 = (float)(1 - Math.Pow(beta2, step)),
            });
        var expected = AdamW(p, g, m, v, lr, beta1, beta2, eps, decay, step, gradScale);
        // Compare the updates, not the parameters, so the check is sensitive to the step itself.
        var actualUpdate = pt.ToArray().Select((x, i) => x - p[i]).ToArray();
        return RelativeError(actualUpdate, expected.Select((x, i) => x - p[i]).ToArray());
    }

    private static double ClipFactorCheck(Session d, Random random)
    {
        var sumSquares = Up(d, [(float)(25 + random.NextDouble())], 1);
        var norm = Tensor.Empty(d, [2]);
        d.Kernels.Optim.ClipFactor(sumSquares.View, norm.View, 1f);
        double total = Math.Sqrt(sumSquares.ToArray()[0]);
        return RelativeError(norm.ToArray(), [total, 1 / (total + 1e-6)]);
    }
}
