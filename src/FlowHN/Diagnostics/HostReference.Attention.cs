using FlowHN.Kernels;

namespace FlowHN.Diagnostics;

/// <summary>Naive float64 attention and RoPE: explicit scores, mask, softmax, weighted sum.</summary>
internal static partial class HostReference
{
    /// <summary>Output [B, Lq, Hq, D] and log-sum-exp [B, Hq, Lq] (-inf for a query that sees no key).</summary>
    public static (double[] Out, double[] LogSumExp) Attention(float[] q, float[] k, float[] v, int[] qPos, int[] kPos,
        AttentionShape s)
    {
        var output = new double[q.Length];
        var lse = new double[s.QueryRows];
        for (int b = 0; b < s.Batch; b++)
            for (int h = 0; h < s.QueryHeads; h++)
                for (int i = 0; i < s.QueryLength; i++)
                {
                    var p = Probabilities(q, k, qPos, kPos, s, b, h, i, out lse[(b * s.QueryHeads + h) * s.QueryLength + i]);
                    for (int j = 0; j < s.KeyLength; j++)
                        for (int e = 0; e < s.HeadDim; e++)
                            output[QueryIndex(s, b, i, h, e)] += p[j] * v[KeyIndex(s, b, j, h, e)];
                }
        return (output, lse);
    }

    /// <summary>Gradients of the attention output with respect to q, k and v for an upstream gradient dO.</summary>
    public static (double[] Dq, double[] Dk, double[] Dv) AttentionBackward(float[] q, float[] k, float[] v, int[] qPos,
        int[] kPos, float[] dO, AttentionShape s)
    {
        var dq = new double[q.Length];
        var dk = new double[k.Length];
        var dv = new double[v.Length];
        int d = s.HeadDim;
        for (int b = 0; b < s.Batch; b++)
            for (int h = 0; h < s.QueryHeads; h++)
                for (int i = 0; i < s.QueryLength; i++)
                {
                    var p = Probabilities(q, k, qPos, kPos, s, b, h, i, out _);
                    // dP_j = dO_i . v_j; softmax backward: dS_j = P_j (dP_j - sum_l P_l dP_l).
                    var dp = new double[s.KeyLength];
                    double weighted = 0;
                    for (int j = 0; j < s.KeyLength; j++)
                    {
                        for (int e = 0; e < d; e++) dp[j] += (double)dO[QueryIndex(s, b, i, h, e)] * v[KeyIndex(s, b, j, h, e)];
                        weighted += p[j] * dp[j];
                    }
                    for (int j = 0; j < s.KeyLength; j++)
                    {
                        double ds = p[j] * (dp[j] - weighted);
                        for (int e = 0; e < d; e++)
                        {
                            int qi = QueryIndex(s, b, i, h, e), ki = KeyIndex(s, b, j, h, e);
                            dq[qi] += s.Scale * ds * k[ki];
                            dk[ki] += s.Scale * ds * q[qi];
                            dv[ki] += p[j] * dO[qi];
                        }
                    }
                }
        return (dq, dk, dv);
    }

    /// <summary>Softmax over the visible keys of one query (zeros where masked).</summary>
    private static double[] Probabilities(float[] q, float[] k, int[] qPos, int[] kPos, AttentionShape s, int b, int h, int i,
        out double logSumExp)
    {
        var scores = new double[s.KeyLength];
        double max = double.NegativeInfinity;
        for (int j = 0; j < s.KeyLength; j++)
        {
            if (kPos[j] > qPos[i])
            {
                scores[j] = double.NegativeInfinity;
                continue;
            }
            double dot = 0;
            for (int e = 0; e < s.HeadDim; e++) dot += (double)q[QueryIndex(s, b, i, h, e)] * k[KeyIndex(s, b, j, h, e)];
            scores[j] = s.Scale * dot;
            max = Math.Max(max, scores[j]);
        }
        var p = new double[s.KeyLength];
        if (double.IsNegativeInfinity(max))
        {
            logSumExp = double.NegativeInfinity;
            return p;
        }
        double sum = 0;
        for (int j = 0; j < s.KeyLength; j++) sum += Math.Exp(scores[j] - max);
        for (int j = 0; j < s.KeyLength; j++) p[j] = Math.Exp(scores[j] - max) / sum;
        logSumExp = max + Math.Log(sum);
        return p;
    }

    private static int QueryIndex(AttentionShape s, int b, int i, int h, int e) =>
        ((b * s.QueryLength + i) * s.QueryHeads + h) * s.HeadDim + e;

    /// <summary>Element e of key/value j for query head h (kv head h / (Hq / Hkv)).</summary>
    private static int KeyIndex(AttentionShape s, int b, int j, int h, int e) =>
        ((b * s.KeyLength + j) * s.KvHeads + h / (s.QueryHeads / s.KvHeads)) * s.HeadDim + e;

    /// <summary>
    /// Rotary embedding of x [B, L, H, D]: dims i and i + D/2 rotated by direction * pos * theta^(-2i/D)
    /// (direction -1 is the inverse rotation, i.e. the backward).
    /// </summary>
    public static double[] Rope(float[] x, int[] positions, int batch, int length, int heads, int headDim, double theta,
        int direction = 1)
    {
        var y = new double[x.Length];
        int half = headDim / 2;
        for (int t = 0; t < batch * length; t++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < half; i++)
                {
                    double angle = direction * positions[t % length] * Math.Pow(theta, -2.0 * i / headDim);
                    int a = (t * heads + h) * headDim + i, b = a + half;
                    y[a] = x[a] * Math.Cos(angle) - x[b] * Math.Sin(angle);
                    y[b] = x[a] * Math.Sin(angle) + x[b] * Math.Cos(angle);
                }
        return y;
    }
}
