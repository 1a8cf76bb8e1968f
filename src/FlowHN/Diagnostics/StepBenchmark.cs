using FlowHN.Autograd;
using FlowHN.Data;
using FlowHN.Kernels;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Tensors;
using FlowHN.Training;
using MathNet.Numerics.Statistics;

namespace FlowHN.Diagnostics;

/// <summary>
/// Where a hybrid's training step spends its time: the attention and SSM work of the forward and the backward
/// (see <see cref="BranchTimes"/>), and each pass's whole time, which adds the embedding, fusion, head and loss.
/// </summary>
public sealed record BranchBreakdown(BranchTimes Forward, double ForwardMs, BranchTimes Backward, double BackwardMs)
{
    /// <summary>Forward and backward together.</summary>
    public BranchTimes Step => Forward + Backward;

    /// <summary>(t_attn + t_ssm) / t_both_concurrent over the step: 2 is perfect overlap of equal branches, 1 none.</summary>
    public double OverlapEfficiency => Step.OverlapEfficiency;

    /// <summary>|t_attn - t_ssm| / max over the step: 0 when the split balances the branches exactly.</summary>
    public double Imbalance => Step.Imbalance;

    /// <summary>Embedding, fusion, head, loss and everything else of both passes.</summary>
    public double RestMs => Math.Max(0, ForwardMs + BackwardMs - Step.ConcurrentMs);
}

/// <summary>
/// A training step's memory: measured state and activations (bytes the tensors asked for, comparable with the
/// shape-only step's <paramref name="Predicted"/>), and the allocator's peak in use, which adds its bucket rounding.
/// </summary>
public sealed record StepMemory(long PeakBytes, long StateBytes, double ActivationBytesPerToken, MemoryEstimate Predicted);

/// <summary>One row of a benchmark: an architecture (and split) trained for some timed steps.</summary>
public sealed record BenchResult(string Arch, string Split, long Parameters, int TokensPerStep, double MedianMs, double MinMs,
    double MaxMs, double TokensPerSecond, double Mfu, double PeakUsed, string PeakSource, StepMemory Memory,
    double LaunchesPerStep, double TransfersPerStep, long DriverAllocations, BranchBreakdown? Breakdown);

/// <summary>
/// Times full training steps of one model: the <see cref="TrainingStep"/> that <c>train</c> takes (forward, loss,
/// backward, AdamW, zeroing), between device events a <see cref="StepClock"/> records; nothing inside a step waits
/// for the host (batches come from a <see cref="BatchPrefetcher"/>), and the timed steps' events are read only
/// after the last of them. Tokens are synthetic (seeded) unless a loader is given.
/// </summary>
public static class StepBenchmark
{
    private const double LearningRate = 1e-4;

    public static BenchResult Run(Session device, ModelConfig config, int batch, int seqLen, int warmup, int steps,
        bool breakdown, TokenLoader? loader = null, int seed = 1, bool branchConcurrency = true, bool recompute = false)
    {
        if (breakdown && recompute)
            throw new UserException("The breakdown times each layer as it runs once; with recomputation layers run twice. Leave out one of them.");
        long idle = device.Runtime.Allocator.RequestedBytesInUse; // what others hold on a shared device is not this model's
        using var model = LanguageModel.Create(device, config, seed);
        model.Recompute = recompute;
        if (model is FlowHNLM f) f.BranchConcurrency = device.Runtime.IsCuda && branchConcurrency;
        using var optimizer = new AdamW(device, model.Parameters().ToList());
        var random = new Random(seed);
        // Drawn and planned one batch ahead on a worker thread, uploaded asynchronously: the timed steps hold only
        // device work, and the host waits for nothing inside them.
        using var batches = new BatchPrefetcher(device, batch, seqLen, (inputs, targets) =>
        {
            if (loader is not null)
            {
                loader.Fill(inputs, targets, seqLen);
                return loader.State;
            }
            RandomBatch(random, inputs, targets, seqLen, config.VocabSize);
            return 0;
        });
        TokenIndex NextBatch() => batches.Next();
        var step = new TrainingStep(device, model, optimizer);

        for (int i = 0; i < warmup; i++) step.Run(NextBatch, LearningRate);
        device.Runtime.Synchronize();
        device.Runtime.Allocator.ResetPeak();
        device.Runtime.Counters.Reset();
        long stateBytes = device.Runtime.Allocator.RequestedBytesInUse - idle;
        long driverAllocations = device.Runtime.Allocator.DriverAllocations;
        // Each timed step has events of its own, read after the last one: the host never waits between timed
        // steps, so it can queue ahead and the events hold device work only.
        var clocks = Enumerable.Range(0, steps).Select(_ => new StepClock(device)).ToList();
        List<double> times;
        try
        {
            foreach (var stepClock in clocks)
            {
                step.Observer = stepClock;
                step.Run(NextBatch, LearningRate);
            }
            times = clocks.Select(c => c.StepMs).ToList();
        }
        finally
        {
            step.Observer = null;
            foreach (var stepClock in clocks) stepClock.Dispose();
        }
        using var clock = new StepClock(device);
        step.Observer = clock;
        driverAllocations = device.Runtime.Allocator.DriverAllocations - driverAllocations; // 0 in a steady state
        double median = times.Median();
        int tokensPerStep = batch * seqLen;
        double flops = LanguageModel.TrainingFlopsPerToken(config, seqLen) * tokensPerStep;
        bool tf32 = device.Kernels.Gemm.UsesTf32;
        double peak = device.Runtime.Peak.For(tf32);
        var memory = new StepMemory(device.Runtime.Allocator.PeakBytesInUse, stateBytes,
            (double)(device.Runtime.Allocator.PeakRequestedBytes - idle - stateBytes) / tokensPerStep,
            MemoryMeasure.Estimate(config, batch, seqLen, MemoryMeasure.Like(device.Runtime), model.ActivationMemory));
        return new BenchResult(config.Ssm == SsmKind.Mamba2 && config.Architecture.ChoosesSsm ? config.Arch + "+mamba2" : config.Arch,
            SplitWords.Label(config), model.ParameterCount, tokensPerStep, median, times.Min(), times.Max(),
            tokensPerStep / (median / 1000), flops / (median / 1000) / peak, peak, $"{(tf32 ? "tf32" : "fp32")} {device.Runtime.Peak.Source}",
            memory,
            (double)device.Runtime.Counters.Launches / steps, (double)device.Runtime.Counters.Transfers / steps, driverAllocations,
            !breakdown ? null
            : model is FlowHNLM flowhn ? Breakdown(device, flowhn, step, clock, NextBatch, branchConcurrency)
            : config.Architecture.BreakdownParts is not null ? MedianOfThree(device, model, step, clock, NextBatch)
            : null);
    }

    private static void RandomBatch(Random random, Span<int> inputs, Span<int> targets, int seqLen, int vocab)
    {
        var row = new int[seqLen + 1];
        for (int b = 0; b < inputs.Length / seqLen; b++)
        {
            for (int t = 0; t < row.Length; t++) row[t] = random.Next(vocab);
            row.AsSpan(0, seqLen).CopyTo(inputs.Slice(b * seqLen, seqLen));
            row.AsSpan(1, seqLen).CopyTo(targets.Slice(b * seqLen, seqLen));
        }
    }

    /// <summary>
    /// Three training steps with a <see cref="SegmentProfile"/> watching the model's layers, blocks and branches;
    /// the one whose forward and backward take the median time, a whole sample, so its parts add up. A sequential
    /// hybrid's attention and Mamba layers (Hymba's attention and SSM heads) run one after the other, so there
    /// "both" is their sum.
    /// </summary>
    private static BranchBreakdown MedianOfThree(Session device, LanguageModel model, TrainingStep step, StepClock clock,
        Func<TokenIndex> next)
    {
        using var profile = new SegmentProfile(device);
        model.Observer = profile;
        var samples = new List<BranchBreakdown>();
        for (int i = 0; i < 3; i++)
        {
            profile.Reset();
            step.Run(next, LearningRate);
            profile.Collect(backward: true);
            samples.Add(new BranchBreakdown(profile.Forward, clock.ForwardMs, profile.Backward, clock.BackwardMs));
        }
        model.Observer = null;
        return samples.OrderBy(s => s.ForwardMs + s.BackwardMs).ElementAt(samples.Count / 2);
    }

    /// <summary>
    /// Steps with the branches one after the other (each branch's own time), then concurrently (both together);
    /// the median of three steps each. On the CPU accelerator streams are serial, so there the concurrent time is
    /// the sum.
    /// </summary>
    private static BranchBreakdown Breakdown(Session device, FlowHNLM model, TrainingStep step, StepClock clock,
        Func<TokenIndex> next, bool concurrency)
    {
        BranchBreakdown Passes(bool concurrent)
        {
            model.BranchConcurrency = concurrent;
            return MedianOfThree(device, model, step, clock, next);
        }
        var serial = Passes(concurrent: false);
        var both = device.Runtime.IsCuda && concurrency ? Passes(concurrent: true) : serial;
        // Each branch's own time from the serial passes; "both" and the passes' totals from the concurrent ones.
        return new BranchBreakdown(serial.Forward with { ConcurrentMs = both.Forward.ConcurrentMs }, both.ForwardMs,
            serial.Backward with { ConcurrentMs = both.Backward.ConcurrentMs }, both.BackwardMs);
    }
}
