namespace FlowHN.Diagnostics;

/// <summary>
/// The inputs of one Mamba-2 state-space-dual (SSD) scan on the host, laid out as in <c>Ops.Ssd</c>: x [B, L, H, P],
/// dt (before the softplus) [B, L, H], dtBias, aLog and D [H], B and C [B, L, G, N], the optional initial state
/// [B, H, P, N] (PyTorch's ssm_state layout). Heads h use the B/C group h / (H / G).
/// </summary>
public sealed record SsdData(int Batch, int Length, int Heads, int HeadDim, int Groups, int States, float[] X, float[] Dt,
    float[] DtBias, float[] ALog, float[] B, float[] C, float[] D, float[]? Initial)
{
    public int GroupOf(int h) => h / (Heads / Groups);
    public int XAt(int b, int t, int h) => ((b * Length + t) * Heads + h) * HeadDim;
    public int DtAt(int b, int t, int h) => (b * Length + t) * Heads + h;
    public int BcAt(int b, int t, int g) => ((b * Length + t) * Groups + g) * States;
    public int StateAt(int b, int h) => (b * Heads + h) * HeadDim * States;
}

/// <summary>Gradients of every SSD input (DInitial is zeros without an initial state).</summary>
public sealed record SsdGradients(double[] DX, double[] DDt, double[] DDtBias, double[] DALog, double[] DB, double[] DC,
    double[] DD, double[] DInitial);

/// <summary>
/// The Mamba-2 recurrence as a plain float64 loop, one (batch, head) at a time: with dt = softplus(dt + dtBias)
/// and the scalar A = -exp(A_log), h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T ([P, N]) and
/// y_t = h_t C_t + D x_t; its gradients by reverse-mode differentiation of the same loop, written out by hand.
/// </summary>
internal static partial class HostReference
{
    /// <summary>y [B, L, H, P] and the final state [B, H, P, N].</summary>
    public static (double[] Y, double[] FinalState) Ssd(SsdData x)
    {
        var y = new double[x.X.Length];
        var final = new double[x.Batch * x.Heads * x.HeadDim * x.States];
        for (int b = 0; b < x.Batch; b++)
            for (int h = 0; h < x.Heads; h++)
            {
                var states = SsdStates(x, b, h);
                int g = x.GroupOf(h), p = x.HeadDim, n = x.States;
                for (int t = 0; t < x.Length; t++)
                    for (int i = 0; i < p; i++)
                    {
                        double dot = 0;
                        for (int j = 0; j < n; j++) dot += states[t + 1][i * n + j] * x.C[x.BcAt(b, t, g) + j];
                        y[x.XAt(b, t, h) + i] = dot + x.D[h] * x.X[x.XAt(b, t, h) + i];
                    }
                Array.Copy(states[x.Length], 0, final, x.StateAt(b, h), p * n);
            }
        return (y, final);
    }

    /// <summary>Gradients of sum(y * dy) with respect to every input.</summary>
    public static SsdGradients SsdBackward(SsdData x, float[] dy)
    {
        int p = x.HeadDim, n = x.States;
        var r = new SsdGradients(new double[x.X.Length], new double[x.Dt.Length], new double[x.Heads], new double[x.Heads],
            new double[x.B.Length], new double[x.C.Length], new double[x.Heads], new double[x.Batch * x.Heads * p * n]);
        for (int b = 0; b < x.Batch; b++)
            for (int h = 0; h < x.Heads; h++)
            {
                var states = SsdStates(x, b, h);
                int g = x.GroupOf(h);
                double a = -Math.Exp(x.ALog[h]);
                var dh = new double[p * n]; // d loss / d h_t, carried backwards
                for (int t = x.Length - 1; t >= 0; t--)
                {
                    int xAt = x.XAt(b, t, h), bc = x.BcAt(b, t, g), dtAt = x.DtAt(b, t, h);
                    double pre = x.Dt[dtAt] + x.DtBias[h], dt = Softplus(pre), decay = Math.Exp(dt * a);
                    double dDecayed = 0, dInput = 0;
                    for (int i = 0; i < p; i++)
                    {
                        double dyi = dy[xAt + i], xi = x.X[xAt + i];
                        r.DD[h] += dyi * xi;
                        r.DX[xAt + i] += x.D[h] * dyi;
                        for (int j = 0; j < n; j++)
                        {
                            int k = i * n + j;
                            r.DC[bc + j] += dyi * states[t + 1][k];
                            dh[k] += dyi * x.C[bc + j];
                            // h_t = decay h_{t-1} + dt x B: split the state's gradient between its two terms.
                            dDecayed += dh[k] * decay * states[t][k];
                            dInput += dh[k] * xi * x.B[bc + j];
                            r.DB[bc + j] += dh[k] * dt * xi;
                            r.DX[xAt + i] += dh[k] * dt * x.B[bc + j];
                        }
                    }
                    // decay = exp(dt a): d/d dt = a decay, d/d a = dt decay; dA/dA_log = a.
                    double dDt = dInput + dDecayed * a;
                    r.DALog[h] += dDecayed * dt * a;
                    r.DDt[dtAt] = dDt * Sigmoid(pre);
                    r.DDtBias[h] += r.DDt[dtAt];
                    for (int k = 0; k < p * n; k++) dh[k] *= decay;
                }
                if (x.Initial is not null) Array.Copy(dh, 0, r.DInitial, x.StateAt(b, h), p * n);
            }
        return r;
    }

    /// <summary>states[t + 1] = the [P, N] state after step t of one (batch, head); states[0] is the initial state.</summary>
    private static double[][] SsdStates(SsdData x, int b, int h)
    {
        int p = x.HeadDim, n = x.States, g = x.GroupOf(h);
        double a = -Math.Exp(x.ALog[h]);
        var states = new double[x.Length + 1][];
        states[0] = new double[p * n];
        if (x.Initial is not null)
            for (int k = 0; k < p * n; k++) states[0][k] = x.Initial[x.StateAt(b, h) + k];
        for (int t = 0; t < x.Length; t++)
        {
            double dt = Softplus(x.Dt[x.DtAt(b, t, h)] + x.DtBias[h]), decay = Math.Exp(dt * a);
            int xAt = x.XAt(b, t, h), bc = x.BcAt(b, t, g);
            states[t + 1] = new double[p * n];
            for (int i = 0; i < p; i++)
                for (int j = 0; j < n; j++)
                    states[t + 1][i * n + j] = decay * states[t][i * n + j] + dt * x.X[xAt + i] * x.B[bc + j];
        }
        return states;
    }
}
