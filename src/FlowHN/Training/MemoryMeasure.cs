using System.Collections.Concurrent;
using FlowHN.Autograd;
using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Runtime;

namespace FlowHN.Training;

/// <summary>
/// A training step's memory, measured by running the step on a shape-only device (see
/// <see cref="ComputeDevice.IsMeta"/>): the same <see cref="TrainingStep"/>, model and optimizer as a real run,
/// whose allocator keeps the same books without the memory. Two steps, as the benchmark measures a real run: the
/// first makes what stays (weights, gradients, AdamW's moments, position tables), the second's peak is the step's.
/// Nothing here describes a module, so a new architecture's memory needs no code.
/// </summary>
public static class MemoryMeasure
{
    /// <summary>A GPU as the launchers see one (CUDA launch shapes and scratch sizes), measured without one.</summary>
    public static DeviceOptions Cuda { get; } = new()
    {
        Meta = true, Device = DeviceKind.Cuda, CpuWarpSize = 32, CpuWarpsPerGroup = 1, CpuThreads = 32, Optimize = false,
    };

    /// <summary>
    /// The shape-only twin of a device: a GPU's launch shapes, or the same CPU accelerator settings. The GEMM backend
    /// and attention path travel along, since the gemm attention path's score blocks are part of the memory.
    /// </summary>
    public static DeviceOptions Like(ComputeDevice device) => device.IsCuda
        ? Cuda with
        {
            Gemm = device.Options.Gemm, Attention = device.Options.Attention, AttentionQueryBlock = device.Options.AttentionQueryBlock,
        }
        : device.Options with { Meta = true, MemoryLimitGiB = 0 }; // measured whole, compared with the limit after

    private static readonly ConcurrentDictionary<DeviceOptions, ComputeDevice> Devices = new();
    private static readonly object Gate = new(); // a device's allocator measures one step at a time

    /// <summary>The memory of a step of <paramref name="batch"/> x <paramref name="seqLen"/> tokens on the device <paramref name="shapeOnly"/> describes.</summary>
    public static MemoryEstimate Estimate(ModelConfig config, int batch, int seqLen, DeviceOptions shapeOnly,
        ActivationMemory activations = ActivationMemory.Released)
    {
        if (!shapeOnly.Meta) throw new ArgumentException("Memory is measured on a shape-only device (DeviceOptions.Meta).", nameof(shapeOnly));
        lock (Gate)
        {
            var runtime = Devices.GetOrAdd(shapeOnly, options => ComputeDevice.Create(options));
            using var session = new Session(runtime);
            session.Tape.ReleaseSegments = activations != ActivationMemory.Kept;
            var allocator = runtime.Allocator;
            long before = allocator.RequestedBytesInUse;
            using var model = LanguageModel.Create(session, config, seed: 0);
            model.Recompute = activations == ActivationMemory.Recomputed;
            using var optimizer = new AdamW(session, model.Parameters().ToList());
            var step = new TrainingStep(session, model, optimizer);
            // As many distinct ids as the batch can hold: the embedding backward's plan, the one size that depends
            // on the ids, is then the largest a real batch can make.
            var tokens = Enumerable.Range(0, batch * seqLen).Select(i => i % config.VocabSize).ToArray();
            var tokenBatch = new TokenBatch(tokens, tokens, batch, seqLen);
            step.Run(() => tokenBatch, learningRate: 0);
            allocator.ResetPeak();
            long state = allocator.RequestedBytesInUse - before;
            step.Run(() => tokenBatch, learningRate: 0);
            long peak = allocator.PeakRequestedBytes - before;
            return new MemoryEstimate(state, (double)(peak - state) / ((long)batch * seqLen));
        }
    }
}
