namespace FlowHN.Diagnostics;

/// <summary>The inputs of one selective scan on the host (layouts as in <c>Ops.SelectiveScan</c>; Initial may be null).</summary>
public sealed record ScanData(int Batch, int Length, int Channels, int States, float[] U, float[] Delta, float[] DeltaBias,
    float[] ALog, float[] B, float[] C, float[] DSkip, float[] Z, float[]? Initial)
{
    public int At(int b, int t, int d) => (b * Length + t) * Channels + d;
    public int Row(int b, int t) => (b * Length + t) * States;
    public int State(int b, int d) => (b * Channels + d) * States;
}

/// <summary>Gradients of every scan input (DInitial is zeros without an initial state).</summary>
public sealed record ScanGradients(double[] DU, double[] DDelta, double[] DDeltaBias, double[] DALog, double[] DB, double[] DC,
    double[] DSkip, double[] DZ, double[] DInitial);

/// <summary>
/// Float64 Mamba references: selective_scan_ref as a plain sequential loop, a direct causal convolution,
/// and their gradients by reverse-mode differentiation of the same loops, written out by hand.
/// </summary>
internal static partial class HostReference
{
    /// <summary>y [B, L, D] and the final state [B, D, N].</summary>
    public static (double[] Y, double[] FinalState) SelectiveScan(ScanData x)
    {
        var y = new double[x.U.Length];
        var final = new double[x.Batch * x.Channels * x.States];
        for (int b = 0; b < x.Batch; b++)
            for (int d = 0; d < x.Channels; d++)
            {
                var h = ScanStates(x, b, d);
                for (int t = 0; t < x.Length; t++)
                {
                    int at = x.At(b, t, d);
                    double dot = 0;
                    for (int n = 0; n < x.States; n++) dot += x.C[x.Row(b, t) + n] * h[t + 1][n];
                    y[at] = (dot + x.DSkip[d] * x.U[at]) * Silu(x.Z[at]);
                }
                Array.Copy(h[x.Length], 0, final, x.State(b, d), x.States);
            }
        return (y, final);
    }

    /// <summary>Gradients of sum(y * dy) with respect to every input.</summary>
    public static ScanGradients SelectiveScanBackward(ScanData x, float[] dy)
    {
        int n = x.States;
        var g = new ScanGradients(new double[x.U.Length], new double[x.U.Length], new double[x.Channels],
            new double[x.ALog.Length], new double[x.B.Length], new double[x.C.Length], new double[x.Channels],
            new double[x.U.Length], new double[x.Batch * x.Channels * n]);
        for (int b = 0; b < x.Batch; b++)
            for (int d = 0; d < x.Channels; d++)
            {
                var h = ScanStates(x, b, d);
                var dh = new double[n];
                for (int t = x.Length - 1; t >= 0; t--)
                {
                    int at = x.At(b, t, d), row = x.Row(b, t);
                    double u = x.U[at], pre = x.Delta[at] + x.DeltaBias[d], dt = Softplus(pre), z = x.Z[at];
                    double dot = 0;
                    for (int i = 0; i < n; i++) dot += x.C[row + i] * h[t + 1][i];
                    double output = dot + x.DSkip[d] * u, gOut = dy[at] * Silu(z);
                    g.DZ[at] = dy[at] * output * SiluDerivative(z);
                    g.DSkip[d] += gOut * u;
                    double du = gOut * x.DSkip[d], ddt = 0;
                    for (int i = 0; i < n; i++)
                    {
                        double a = -Math.Exp(x.ALog[d * n + i]), decay = Math.Exp(dt * a);
                        g.DC[row + i] += gOut * h[t + 1][i];
                        dh[i] += gOut * x.C[row + i];
                        // h_t = decay h_{t-1} + dt B u; decay = exp(dt A); dA/dA_log = A.
                        ddt += dh[i] * (decay * a * h[t][i] + x.B[row + i] * u);
                        g.DALog[d * n + i] += dh[i] * decay * dt * a * h[t][i];
                        g.DB[row + i] += dh[i] * dt * u;
                        du += dh[i] * dt * x.B[row + i];
                        dh[i] *= decay;
                    }
                    g.DU[at] = du;
                    g.DDelta[at] = ddt * Sigmoid(pre);
                    g.DDeltaBias[d] += g.DDelta[at];
                }
                if (x.Initial is not null) Array.Copy(dh, 0, g.DInitial, x.State(b, d), n);
            }
        return g;
    }

    /// <summary>h[t + 1] = the state after step t of one (batch, channel); h[0] is the initial state.</summary>
    private static double[][] ScanStates(ScanData x, int b, int d)
    {
        int n = x.States;
        var h = new double[x.Length + 1][];
        h[0] = new double[n];
        if (x.Initial is not null)
            for (int i = 0; i < n; i++) h[0][i] = x.Initial[x.State(b, d) + i];
        for (int t = 0; t < x.Length; t++)
        {
            int at = x.At(b, t, d), row = x.Row(b, t);
            double dt = Softplus(x.Delta[at] + x.DeltaBias[d]);
            h[t + 1] = new double[n];
            for (int i = 0; i < n; i++)
                h[t + 1][i] = Math.Exp(-dt * Math.Exp(x.ALog[d * n + i])) * h[t][i] + dt * x.B[row + i] * x.U[at];
        }
        return h;
    }

    /// <summary>
    /// Causal depthwise convolution of x [B, L, D] with weight [D, W] and bias [D], optionally then SiLU;
    /// state [B, W-1, D] holds the inputs before time 0 (zeros when null).
    /// </summary>
    public static double[] CausalConv(float[] x, float[] weight, float[] bias, float[]? state, int batch, int length,
        int channels, int width, bool silu)
    {
        var y = new double[x.Length];
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < length; t++)
                for (int d = 0; d < channels; d++)
                {
                    double pre = ConvPre(x, weight, bias, state, b, t, d, length, channels, width);
                    y[(b * length + t) * channels + d] = silu ? Silu(pre) : pre;
                }
        return y;
    }

    /// <summary>Gradients of sum(y * dy) for x, weight, bias and the state (zeros without one).</summary>
    public static (double[] Dx, double[] DWeight, double[] DBias, double[] DState) CausalConvBackward(float[] x, float[] weight,
        float[] bias, float[]? state, float[] dy, int batch, int length, int channels, int width, bool silu)
    {
        var dx = new double[x.Length];
        var dw = new double[weight.Length];
        var db = new double[channels];
        var dState = new double[batch * (width - 1) * channels];
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < length; t++)
                for (int d = 0; d < channels; d++)
                {
                    int at = (b * length + t) * channels + d;
                    double pre = ConvPre(x, weight, bias, state, b, t, d, length, channels, width);
                    double g = dy[at] * (silu ? SiluDerivative(pre) : 1);
                    db[d] += g;
                    for (int j = 0; j < width; j++)
                    {
                        int source = t - width + 1 + j;
                        dw[d * width + j] += g * ConvInput(x, state, b, source, d, length, channels, width);
                        if (source >= 0) dx[(b * length + source) * channels + d] += g * weight[d * width + j];
                        else if (state is not null)
                            dState[(b * (width - 1) + width - 1 + source) * channels + d] += g * weight[d * width + j];
                    }
                }
        return (dx, dw, db, dState);
    }

    private static double ConvPre(float[] x, float[] weight, float[] bias, float[]? state, int b, int t, int d, int length,
        int channels, int width)
    {
        double pre = bias[d];
        for (int j = 0; j < width; j++)
            pre += (double)weight[d * width + j] * ConvInput(x, state, b, t - width + 1 + j, d, length, channels, width);
        return pre;
    }

    private static double ConvInput(float[] x, float[]? state, int b, int t, int d, int length, int channels, int width)
    {
        if (t >= 0) return x[(b * length + t) * channels + d];
        return state is null ? 0 : state[(b * (width - 1) + width - 1 + t) * channels + d];
    }
}
