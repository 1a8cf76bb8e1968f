namespace FlowHN.Diagnostics;

/// <summary>Plain float64 host references for the kernels, written for clarity rather than speed.</summary>
internal static partial class HostReference
{
    public static double Silu(double x) => x / (1 + Math.Exp(-x));

    public static double SiluDerivative(double x)
    {
        double s = 1 / (1 + Math.Exp(-x));
        return s * (1 + x * (1 - s));
    }

    public static double Softplus(double x) => Math.Log(1 + Math.Exp(x));

    public static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    /// <summary>C = A B for row-major A [m,k], B [k,n].</summary>
    public static double[] MatMul(IReadOnlyList<float> a, IReadOnlyList<float> b, int m, int n, int k)
    {
        var c = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int p = 0; p < k; p++) sum += (double)a[i * k + p] * b[p * n + j];
                c[i * n + j] = sum;
            }
        return c;
    }

    public static float[] Transpose(float[] x, int rows, int cols)
    {
        var y = new float[x.Length];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) y[j * rows + i] = x[i * cols + j];
        return y;
    }

    /// <summary>RMSNorm rows: returns y and the inverse RMS per row.</summary>
    public static (double[] Y, double[] InverseRms) RmsNorm(float[] x, float[] w, int rows, int cols, double eps)
    {
        var y = new double[x.Length];
        var inv = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double ss = 0;
            for (int j = 0; j < cols; j++) ss += (double)x[r * cols + j] * x[r * cols + j];
            inv[r] = 1 / Math.Sqrt(ss / cols + eps);
            for (int j = 0; j < cols; j++) y[r * cols + j] = x[r * cols + j] * inv[r] * w[j];
        }
        return (y, inv);
    }

    /// <summary>Gradients of RMSNorm: dx and dw for upstream dy.</summary>
    public static (double[] Dx, double[] Dw) RmsNormBackward(float[] x, float[] w, float[] dy, int rows, int cols, double eps)
    {
        var (_, inv) = RmsNorm(x, w, rows, cols, eps);
        var dx = new double[x.Length];
        var dw = new double[cols];
        for (int r = 0; r < rows; r++)
        {
            double dot = 0;
            for (int j = 0; j < cols; j++) dot += (double)dy[r * cols + j] * w[j] * x[r * cols + j];
            double mean = dot / cols, ri = inv[r];
            for (int j = 0; j < cols; j++)
            {
                int i = r * cols + j;
                dx[i] = ri * (w[j] * dy[i] - x[i] * ri * ri * mean);
                dw[j] += dy[i] * x[i] * ri;
            }
        }
        return (dx, dw);
    }

    /// <summary>
    /// Mean cross-entropy over rows whose target is not ignored, each row's loss (0 when ignored), and the logits
    /// gradient; logits [rows, vocab] contiguous, two passes (max, then sum) in float64.
    /// </summary>
    public static (double Loss, double[] RowLoss, double[] DLogits) CrossEntropy(float[] logits, int[] targets, int vocab, int ignoreIndex)
    {
        int rows = targets.Length;
        var grad = new double[logits.Length];
        var rowLoss = new double[rows];
        double total = 0;
        int counted = targets.Count(t => t != ignoreIndex);
        for (int r = 0; r < rows; r++)
        {
            if (targets[r] == ignoreIndex) continue;
            double max = double.NegativeInfinity;
            for (int v = 0; v < vocab; v++) max = Math.Max(max, logits[r * vocab + v]);
            double sum = 0;
            for (int v = 0; v < vocab; v++) sum += Math.Exp(logits[r * vocab + v] - max);
            double lse = max + Math.Log(sum);
            rowLoss[r] = lse - logits[r * vocab + targets[r]];
            total += rowLoss[r];
            for (int v = 0; v < vocab; v++)
                grad[r * vocab + v] = (Math.Exp(logits[r * vocab + v] - lse) - (v == targets[r] ? 1 : 0)) / Math.Max(counted, 1);
        }
        return (total / Math.Max(counted, 1), rowLoss, grad);
    }

    /// <summary>One AdamW step in float64; returns the new parameter values.</summary>
    public static double[] AdamW(float[] p, float[] g, float[] m, float[] v, double lr, double beta1, double beta2,
        double eps, double weightDecay, int step, double gradScale)
    {
        var result = new double[p.Length];
        for (int i = 0; i < p.Length; i++)
        {
            double gi = g[i] * gradScale;
            double mi = beta1 * m[i] + (1 - beta1) * gi;
            double vi = beta2 * v[i] + (1 - beta2) * gi * gi;
            double mhat = mi / (1 - Math.Pow(beta1, step)), vhat = vi / (1 - Math.Pow(beta2, step));
            result[i] = p[i] - lr * (mhat / (Math.Sqrt(vhat) + eps) + weightDecay * p[i]);
        }
        return result;
    }

    public static double RelativeError(IReadOnlyList<float> actual, IReadOnlyList<double> expected)
    {
        if (actual.Count != expected.Count) return double.PositiveInfinity;
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Count; i++)
        {
            if (!float.IsFinite(actual[i])) return double.PositiveInfinity;
            diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
            norm += expected[i] * expected[i];
        }
        return Math.Sqrt(diff) / Math.Max(Math.Sqrt(norm), 1e-30);
    }
}
