using FlowHN.Autograd;
using FlowHN.Data;
using FlowHN.Kernels;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Tensors;
using MathNet.Numerics.Statistics;

namespace FlowHN.Training;

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
/// memory model's <paramref name="Predicted"/>), and the allocator's peak in use, which adds its bucket rounding.
/// </summary>
public sealed record StepMemory(long PeakBytes, long StateBytes, double ActivationBytesPerToken, MemoryEstimate Predicted);

/// <summary>One row of a benchmark: an architecture (and split) trained for some timed steps.</summary>
public sealed record BenchResult(string Arch, string Split, long Parameters, int TokensPerStep, double MedianMs, double MinMs,
    double MaxMs, double TokensPerSecond, double Mfu, double PeakUsed, string PeakSource, StepMemory Memory,
    double LaunchesPerStep, double TransfersPerStep, long DriverAllocations, BranchBreakdown? Breakdown);

/// <summary>
/// Times full training steps (forward, loss, backward, AdamW, zeroing) of one model. Device events bracket each
/// step; nothing inside a step waits for the host. Tokens are synthetic (seeded) unless a loader is given.
/// </summary>
public static class StepBenchmark
{
    public static BenchResult Run(ComputeDevice device, ModelConfig config, int batch, int seqLen, int warmup, int steps,
        bool breakdown, TokenLoader? loader = null, int seed = 1, bool branchConcurrency = true, bool recompute = false)
    {
        if (breakdown && recompute)
            throw new UserException("The breakdown times each layer as it runs once; with recomputation layers run twice. Leave out one of them.");
        using var model = LanguageModel.Create(device, config, seed);
        model.Recompute = recompute;
        if (model is FlowHNLM f) f.BranchConcurrency = device.IsCuda && branchConcurrency;
        var parameters = model.Parameters().ToList();
        using var optimizer = new AdamW(device, parameters);
        var random = new Random(seed);
        TokenBatch NextBatch() => loader?.NextBatch(batch, seqLen) ?? RandomBatch(random, batch, seqLen, config.VocabSize);

        for (int i = 0; i < warmup; i++) Step(device, model, optimizer, NextBatch(), null, null);
        device.Synchronize();
        device.Allocator.ResetPeak();
        device.Counters.Reset();
        long stateBytes = device.Allocator.RequestedBytesInUse;
        long driverAllocations = device.Allocator.DriverAllocations;
        using var start = device.CreateEvent(timing: true);
        using var end = device.CreateEvent(timing: true);
        var times = new List<double>();
        for (int i = 0; i < steps; i++)
        {
            Step(device, model, optimizer, NextBatch(), start, end);
            times.Add(DeviceEvent.ElapsedMilliseconds(start, end));
        }
        driverAllocations = device.Allocator.DriverAllocations - driverAllocations; // 0 in a steady state
        double median = times.Median();
        int tokensPerStep = batch * seqLen;
        double flops = LanguageModel.TrainingFlopsPerToken(config, seqLen) * tokensPerStep;
        bool tf32 = device.Kernels.Gemm.UsesTf32;
        double peak = device.Peak.For(tf32);
        var memory = new StepMemory(device.Allocator.PeakBytesInUse, stateBytes,
            (double)(device.Allocator.PeakRequestedBytes - stateBytes) / tokensPerStep,
            MemoryModel.Estimate(config, batch, seqLen, KernelGeometry.Of(device), model.ActivationMemory));
        var result = new BenchResult(config.Ssm == SsmKind.Mamba2 && config.Architecture.ChoosesSsm ? config.Arch + "+mamba2" : config.Arch,
            SplitWords.Label(config), model.ParameterCount, tokensPerStep, median, times.Min(), times.Max(),
            tokensPerStep / (median / 1000), flops / (median / 1000) / peak, peak, $"{(tf32 ? "tf32" : "fp32")} {device.Peak.Source}",
            memory,
            (double)device.Counters.Launches / steps, (double)device.Counters.Transfers / steps, driverAllocations,
            !breakdown ? null
            : model is FlowHNLM flowhn ? Breakdown(device, flowhn, NextBatch, branchConcurrency)
            : model is SequentialLM stack && config.Architecture.BreakdownParts is not null ? LayerBreakdown(device, stack, NextBatch)
            : null);
        return result;
    }

    /// <summary>
    /// One training step, timed between <paramref name="start"/> and <paramref name="end"/> when given: the batch's
    /// host work (the id plan) and its upload come before the start event, so only device work is timed.
    /// </summary>
    private static void Step(ComputeDevice device, LanguageModel model, AdamW optimizer, TokenBatch batch, DeviceEvent? start,
        DeviceEvent? end)
    {
        using (device.BeginScope())
        {
            var ids = TokenIndex.FromBatch(device, batch.Inputs, batch.Targets, batch.BatchSize, batch.SeqLen);
            start?.Record(device.CurrentStream);
            device.Tape.Backward(Evaluation.Loss(model, ids));
            optimizer.Step(1e-4);
            model.ZeroGrad();
            end?.Record(device.CurrentStream);
        }
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
    /// A sequential hybrid's attention and Mamba layers (Hymba's attention and SSM heads) timed in a forward and
    /// backward pass (the median of three). They run one after the other, so "both" is their sum.
    /// </summary>
    private static BranchBreakdown LayerBreakdown(ComputeDevice device, SequentialLM model, Func<TokenBatch> next)
    {
        using var profile = new LayerProfile(device);
        model.Profile = profile;
        var median = MedianOfThree(device, model, profile, next);
        model.Profile = null;
        return median;
    }

    /// <summary>
    /// Three timed forward and backward passes with <paramref name="profile"/> attached to the model; the one
    /// whose step takes the median time, a whole sample, so its parts add up.
    /// </summary>
    private static BranchBreakdown MedianOfThree(ComputeDevice device, LanguageModel model, IPassProfile profile, Func<TokenBatch> next)
    {
        var samples = new List<BranchBreakdown>();
        for (int i = 0; i < 3; i++)
        {
            profile.Reset();
            var (forward, backward) = TimedPasses(device, model, next());
            profile.Collect(backward: true);
            samples.Add(new BranchBreakdown(profile.Forward, forward, profile.Backward, backward));
        }
        return samples.OrderBy(s => s.ForwardMs + s.BackwardMs).ElementAt(samples.Count / 2);
    }

    /// <summary>
    /// A forward and a backward pass (no optimizer step; the gradients are zeroed after), each timed with device
    /// events. Token ids are uploaded before the first event.
    /// </summary>
    private static (double ForwardMs, double BackwardMs) TimedPasses(ComputeDevice device, LanguageModel model, TokenBatch batch)
    {
        using var start = device.CreateEvent(timing: true);
        using var middle = device.CreateEvent(timing: true);
        using var end = device.CreateEvent(timing: true);
        using (device.BeginScope())
        {
            var ids = TokenIndex.FromBatch(device, batch.Inputs, batch.Targets, batch.BatchSize, batch.SeqLen);
            start.Record(device.CurrentStream);
            var loss = Ops.CrossEntropy(model.Forward(ids, batch.BatchSize, batch.SeqLen), ids.Targets!, overwriteLogits: true);
            middle.Record(device.CurrentStream);
            device.Tape.Backward(loss);
            end.Record(device.CurrentStream);
            var times = (DeviceEvent.ElapsedMilliseconds(start, middle), DeviceEvent.ElapsedMilliseconds(middle, end));
            model.ZeroGrad();
            return times;
        }
    }

    /// <summary>
    /// Forward and backward passes with the branches one after the other (each branch's own time), then
    /// concurrently (both together); the median of three steps each. On the CPU accelerator streams are serial,
    /// so there the concurrent time is the sum.
    /// </summary>
    private static BranchBreakdown Breakdown(ComputeDevice device, FlowHNLM model, Func<TokenBatch> next, bool concurrency)
    {
        using var profile = new BranchProfile(device);
        model.Profile = profile;
        BranchBreakdown Passes(bool concurrent)
        {
            model.BranchConcurrency = concurrent;
            return MedianOfThree(device, model, profile, next);
        }
        var serial = Passes(concurrent: false);
        var both = device.IsCuda && concurrency ? Passes(concurrent: true) : serial;
        model.Profile = null;
        // Each branch's own time from the serial passes; "both" and the passes' totals from the concurrent ones.
        return new BranchBreakdown(serial.Forward with { ConcurrentMs = both.Forward.ConcurrentMs }, both.ForwardMs,
            serial.Backward with { ConcurrentMs = both.Backward.ConcurrentMs }, both.BackwardMs);
    }

}
