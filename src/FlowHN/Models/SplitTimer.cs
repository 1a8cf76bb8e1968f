using System.Diagnostics;
using FlowHN.Autograd;
using FlowHN.Nn;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Models;

/// <summary>
/// <c>--split-ratio time</c>: instead of the FLOP model, time one block's two branches (forward + backward) on
/// this device at attention shares of 1/8 .. 7/8 and pick the share where the measured times cross, interpolating
/// between the two nearest shares. The result is a fixed ratio, saved in the model config, so a resumed run
/// splits the same way.
/// </summary>
public static class SplitTimer
{
    public sealed record Measurement(int AttentionTokens, double AttentionMs, double SsmMs);

    /// <summary>
    /// A config whose split ratio is <see cref="AttentionShare.Measured"/> with the share measured here instead,
    /// kept to four decimals as it is saved; any other config as it is, with no measurements.
    /// </summary>
    public static (ModelConfig Config, IReadOnlyList<Measurement> Measurements) Resolve(Session device, ModelConfig c, int batch,
        int seqLen)
    {
        if (c.SplitRatio is not AttentionShare.Measured || !c.Architecture.SplitsTokens) return (c, []);
        var (ratio, measurements) = Measure(device, c, batch, seqLen);
        return (c with { SplitRatio = AttentionShare.Rounded(ratio) }, measurements);
    }

    public static (double Ratio, IReadOnlyList<Measurement> Measurements) Measure(Session device, ModelConfig c, int batch,
        int seqLen, int repeats = 2) =>
        Measure(device, c, batch, seqLen, run => Time(device, repeats, run));

    /// <summary>As <see cref="Measure(Session, ModelConfig, int, int, int)"/>, with the cost of a branch's
    /// forward + backward taken by <paramref name="cost"/> (tests count its launched FLOPs instead of timing it).</summary>
    internal static (double Ratio, IReadOnlyList<Measurement> Measurements) Measure(Session device, ModelConfig c, int batch,
        int seqLen, Func<Action, double> cost)
    {
        var random = new Random(1);
        using var attention = new AttentionLayer(device, "timing.attn", c.Dim, c.Heads, c.KvHeads, c.MlpHidden, c.Rope, c.NormEps, random, 0.02).Allocated();
        using var ssm = ParallelBlock.SsmLayer(device, "timing.ssm", c, random, 0.02).Allocated();
        var measurements = new List<Measurement>();
        for (int eighth = 1; eighth < 8; eighth++)
        {
            int a = Math.Clamp(seqLen * eighth / 8, 1, seqLen - 1);
            double attentionMs = cost(() => RunAttention(device, attention, c, batch, seqLen, a));
            double ssmMs = cost(() => RunSsm(device, ssm, c, batch, seqLen - a));
            measurements.Add(new Measurement(a, attentionMs, ssmMs));
        }
        attention.ZeroGrad();
        ssm.ZeroGrad();
        return (Crossing(measurements, seqLen), measurements);
    }

    /// <summary>The attention share where attention time minus SSM time changes sign (linear between samples).</summary>
    internal static double Crossing(IReadOnlyList<Measurement> m, int seqLen)
    {
        for (int i = 0; i + 1 < m.Count; i++)
        {
            double d0 = m[i].AttentionMs - m[i].SsmMs, d1 = m[i + 1].AttentionMs - m[i + 1].SsmMs;
            if (d0 <= 0 && d1 >= 0)
            {
                double t = d1 == d0 ? 0.5 : -d0 / (d1 - d0);
                return (m[i].AttentionTokens + t * (m[i + 1].AttentionTokens - m[i].AttentionTokens)) / seqLen;
            }
        }
        // No crossing: one branch is slower everywhere; give it the smallest share measured.
        return m[0].AttentionMs - m[0].SsmMs > 0 ? (double)m[0].AttentionTokens / seqLen : (double)m[^1].AttentionTokens / seqLen;
    }

    private static double Time(Session device, int repeats, Action run)
    {
        run(); // warm-up: compiles kernels and fills the allocator cache
        device.Runtime.Synchronize();
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < repeats; i++) run();
        device.Runtime.Synchronize();
        return clock.Elapsed.TotalMilliseconds / repeats;
    }

    private static void RunAttention(Session device, AttentionLayer layer, ModelConfig c, int batch, int seqLen, int a)
    {
        using var scope = device.BeginScope();
        var x = Tensor.Zeros(device, [batch, seqLen, c.Dim]);
        x.RequiresGrad = true;
        var all = Tensor.FromArray(device, Enumerable.Range(0, seqLen).ToArray(), seqLen);
        var trailing = Tensor.FromArray(device, Enumerable.Range(seqLen - a, a).ToArray(), a);
        var tokens = Ops.GatherTokens(x, trailing);
        var y = c.SplitContext == SplitContext.Prefix
            ? layer.Forward(tokens, batch, trailing, x, all)
            : layer.Forward(tokens, batch, trailing, null, trailing);
        device.Tape.Backward(Ops.Sum(y));
    }

    private static void RunSsm(Session device, DecoderLayer layer, ModelConfig c, int batch, int tokens)
    {
        using var scope = device.BeginScope();
        var x = Tensor.Zeros(device, [batch, tokens, c.Dim]);
        x.RequiresGrad = true;
        var positions = Tensor.FromArray(device, Enumerable.Range(0, tokens).ToArray(), tokens);
        device.Tape.Backward(Ops.Sum(layer.Forward(x, new SequenceContext(batch, tokens, positions))));
    }
}
