using FlowHN.Autograd;
using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Tensors;
using MathNet.Numerics.Statistics;

namespace FlowHN.Training;

/// <summary>Forward-pass branch times of a FlowHN model (per step, summed over blocks), and what follows from them.</summary>
public sealed record BranchBreakdown(double AttentionMs, double SsmMs, double ConcurrentMs, double ForwardMs)
{
    /// <summary>(t_attn + t_ssm) / t_both_concurrent: 2 is perfect overlap of equal branches, 1 none.</summary>
    public double OverlapEfficiency => (AttentionMs + SsmMs) / Math.Max(ConcurrentMs, 1e-12);
    /// <summary>|t_attn - t_ssm| / max: 0 when the split balances the branches exactly.</summary>
    public double Imbalance => Math.Abs(AttentionMs - SsmMs) / Math.Max(Math.Max(AttentionMs, SsmMs), 1e-12);
    /// <summary>Fusion, embedding, head and everything else of the forward pass.</summary>
    public double RestMs => Math.Max(0, ForwardMs - ConcurrentMs);
}

/// <summary>One row of a benchmark: an architecture (and split) trained for some timed steps.</summary>
public sealed record BenchResult(string Arch, string Split, long Parameters, int TokensPerStep, double MedianMs, double MinMs,
    double MaxMs, double TokensPerSecond, double Mfu, double PeakUsed, string PeakSource, long PeakBytes, long StateBytes,
    double ActivationBytesPerToken, double LaunchesPerStep, double TransfersPerStep, long DriverAllocations, BranchBreakdown? Breakdown);

/// <summary>
/// Times full training steps (forward, loss, backward, AdamW, zeroing) of one model. Device events bracket each
/// step; nothing inside a step waits for the host. Tokens are synthetic (seeded) unless a loader is given.
/// </summary>
public static class StepBenchmark
{
    public static BenchResult Run(ComputeDevice device, ModelConfig config, int batch, int seqLen, int warmup, int steps,
        bool breakdown, TokenLoader? loader = null, int seed = 1, bool branchConcurrency = true)
    {
        using var model = LanguageModel.Create(device, config, seed);
        if (model is FlowHNLM f) f.BranchConcurrency = device.IsCuda && branchConcurrency;
        var parameters = model.Parameters().ToList();
        using var optimizer = new AdamW(device, parameters);
        var random = new Random(seed);
        TokenBatch NextBatch() => loader?.NextBatch(batch, seqLen) ?? RandomBatch(random, batch, seqLen, config.VocabSize);

        for (int i = 0; i < warmup; i++) Step(device, model, optimizer, NextBatch());
        device.Synchronize();
        device.Allocator.ResetPeak();
        device.Counters.Reset();
        long stateBytes = device.Allocator.BytesInUse;
        long driverAllocations = device.Allocator.DriverAllocations;
        using var start = device.CreateEvent(timing: true);
        using var end = device.CreateEvent(timing: true);
        var times = new List<double>();
        for (int i = 0; i < steps; i++)
        {
            var tokens = NextBatch(); // host work before the step is not part of it
            start.Record(device.CurrentStream);
            Step(device, model, optimizer, tokens);
            end.Record(device.CurrentStream);
            times.Add(DeviceEvent.ElapsedMilliseconds(start, end));
        }
        driverAllocations = device.Allocator.DriverAllocations - driverAllocations; // 0 in a steady state
        double median = times.Median();
        int tokensPerStep = batch * seqLen;
        double flops = LanguageModel.TrainingFlopsPerToken(config, seqLen) * tokensPerStep;
        bool tf32 = device.Kernels.Gemm.UsesTf32;
        double peak = device.Peak.For(tf32);
        long peakBytes = device.Allocator.PeakBytesInUse;
        var result = new BenchResult(config.Arch, SplitWords.Label(config), model.ParameterCount, tokensPerStep, median, times.Min(), times.Max(),
            tokensPerStep / (median / 1000), flops / (median / 1000) / peak, peak, $"{(tf32 ? "tf32" : "fp32")} {device.Peak.Source}",
            peakBytes, stateBytes, (double)(peakBytes - stateBytes) / tokensPerStep,
            (double)device.Counters.Launches / steps, (double)device.Counters.Transfers / steps, driverAllocations,
            !breakdown ? null
            : model is FlowHNLM flowhn ? Breakdown(device, flowhn, NextBatch, branchConcurrency)
            : model is SequentialLM stack && config.Arch is "shm" or "jamba" ? LayerBreakdown(device, stack, NextBatch)
            : null);
        return result;
    }

    private static void Step(ComputeDevice device, LanguageModel model, AdamW optimizer, TokenBatch batch)
    {
        using (device.BeginScope())
        {
            device.Tape.Backward(Evaluation.Loss(device, model, batch));
            optimizer.Step(1e-4);
        }
        model.ZeroGrad();
    }

    private static TokenBatch RandomBatch(Random random, int batch, int seqLen, int vocab)
    {
        var tokens = Enumerable.Range(0, batch * (seqLen + 1)).Select(_ => random.Next(vocab)).ToArray();
        var inputs = new int[batch * seqLen];
        var targets = new int[batch * seqLen];
        for (int b = 0; b < batch; b++)
        {
            Array.Copy(tokens, b * (seqLen + 1), inputs, b * seqLen, seqLen);
            Array.Copy(tokens, b * (seqLen + 1) + 1, targets, b * seqLen, seqLen);
        }
        return new TokenBatch(inputs, targets, batch, seqLen);
    }

    /// <summary>
    /// A sequential hybrid's attention and Mamba layers timed in a forward pass (median of three). The layers run
    /// one after the other, so "both" is their sum.
    /// </summary>
    private static BranchBreakdown LayerBreakdown(ComputeDevice device, SequentialLM model, Func<TokenBatch> next)
    {
        using var profile = new LayerProfile(device);
        model.Profile = profile;
        var samples = new List<(double Attention, double Ssm, double Forward)>();
        for (int i = 0; i < 3; i++)
        {
            var batch = next();
            profile.Reset();
            samples.Add((0, 0, TimedForward(device, model, batch)));
            profile.Collect();
            samples[^1] = (profile.AttentionMs, profile.SsmMs, samples[^1].Forward);
        }
        model.Profile = null;
        double attention = samples.Select(s => s.Attention).Median(), ssm = samples.Select(s => s.Ssm).Median();
        return new BranchBreakdown(attention, ssm, attention + ssm, samples.Select(s => s.Forward).Median());
    }

    /// <summary>One forward pass without gradients, timed with device events.</summary>
    private static double TimedForward(ComputeDevice device, LanguageModel model, TokenBatch batch)
    {
        using var start = device.CreateEvent(timing: true);
        using var end = device.CreateEvent(timing: true);
        using (new NoGradScope(device))
        using (device.BeginScope())
        {
            var ids = TokenIndex.FromHost(device, batch.Inputs, batch.BatchSize, batch.SeqLen);
            start.Record(device.CurrentStream);
            model.Forward(ids, batch.BatchSize, batch.SeqLen);
            end.Record(device.CurrentStream);
            return DeviceEvent.ElapsedMilliseconds(start, end);
        }
    }

    /// <summary>
    /// Forward passes with the branches one after the other (each branch's own time), then concurrently (both
    /// together); the median of three passes each. On the CPU accelerator streams are serial, so there the
    /// concurrent time is the sum.
    /// </summary>
    private static BranchBreakdown Breakdown(ComputeDevice device, FlowHNLM model, Func<TokenBatch> next, bool concurrency)
    {
        using var profile = new BranchProfile(device);
        model.Profile = profile;
        (double Attention, double Ssm, double Both, double Forward) Passes(bool concurrent)
        {
            model.BranchConcurrency = concurrent;
            var samples = new List<(double, double, double, double)>();
            for (int i = 0; i < 3; i++)
            {
                profile.Reset();
                double forward = TimedForward(device, model, next());
                profile.Collect();
                samples.Add((profile.AttentionMs, profile.SsmMs, profile.BothMs, forward));
            }
            return (samples.Select(s => s.Item1).Median(), samples.Select(s => s.Item2).Median(),
                samples.Select(s => s.Item3).Median(), samples.Select(s => s.Item4).Median());
        }
        var serial = Passes(concurrent: false);
        var both = device.IsCuda && concurrency ? Passes(concurrent: true) : serial;
        model.Profile = null;
        return new BranchBreakdown(serial.Attention, serial.Ssm, both.Both, both.Forward);
    }
}
