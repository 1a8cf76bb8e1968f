using System.Collections.Concurrent;
using FlowHN.Autograd;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Models;

/// <summary>
/// A model's numbers read off the model itself, so each architecture is described once (its modules): the
/// parameter count from the module tree of the model built on a shape-only device, and the FLOPs per token
/// from the launch counters of one forward and backward on it (see <see cref="ComputeDevice.IsMeta"/>), which
/// count exactly what the real pass launches. Neither draws a value or touches device memory, so the 1b preset
/// at full length is measured in well under a second on any machine.
/// </summary>
public static class ModelMeasure
{
    /// <summary>Model FLOPs per token of one sequence through the model.</summary>
    /// <param name="Forward">The forward, up to and including the LM head.</param>
    /// <param name="Training">Forward, cross-entropy and backward: what a training step launches per token.</param>
    public sealed record FlopCount(double Forward, double Training);

    private static readonly Lazy<Session> Meta = new(() => Session.Create(new DeviceOptions
    {
        Meta = true, Device = DeviceKind.Cpu, CpuWarpSize = 2, CpuWarpsPerGroup = 1, CpuThreads = 2, Optimize = false,
    }));

    private static readonly object Gate = new(); // one shape-only session, one pass at a time
    private static readonly ConcurrentDictionary<ModelConfig, long> ParameterCache = new();
    private static readonly ConcurrentDictionary<(ModelConfig, int), FlopCount> FlopCache = new();

    /// <summary>Parameters of a config (the real vocabulary rows: padding rows are not parameters).</summary>
    public static long Parameters(ModelConfig config) => ParameterCache.GetOrAdd(config, c => OnMeta(session =>
    {
        using var model = c.Architecture.Build(session, c, seed: 0); // planned, never allocated
        return model.ParameterCount;
    }));

    /// <summary>FLOPs per token at a sequence length, as the launchers count them (see <see cref="LaunchCounters"/>).</summary>
    public static FlopCount Flops(ModelConfig config, int seqLen) => FlopCache.GetOrAdd((config, seqLen), key => OnMeta(session =>
    {
        var (c, length) = key;
        using var model = LanguageModel.Create(session, c, seed: 0);
        var counters = session.Runtime.Counters;
        double forward, training;
        using (session.BeginScope())
        {
            var ids = TokenIndex.FromHost(session, new int[length], 1, length);
            var targets = Tensor.FromArray(session, new int[length], length);
            counters.Reset();
            var logits = model.Forward(ids, 1, length);
            forward = counters.ModelFlops;
            session.Tape.Backward(Ops.CrossEntropy(logits, targets, overwriteLogits: true));
            training = counters.ModelFlops;
        }
        return new FlopCount(forward / length, training / length);
    }));

    private static T OnMeta<T>(Func<Session, T> measure)
    {
        lock (Gate) return measure(Meta.Value);
    }
}
