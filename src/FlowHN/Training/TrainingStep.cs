using FlowHN.Autograd;
using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Training;

/// <summary>
/// Points of a training step an observer is told about (benchmarks time the step and its passes with device
/// events). Each call comes on the main stream, in step order; none waits for the device.
/// </summary>
public interface IStepObserver
{
    /// <summary>The first micro-batch's tokens are on the device: the step's device work starts here.</summary>
    void StepStarted() { }

    /// <summary>A micro-batch's forward and loss are done; its backward starts.</summary>
    void ForwardDone(int microBatch) { }

    /// <summary>A micro-batch's backward is done.</summary>
    void BackwardDone(int microBatch) { }

    /// <summary>The update is applied and the gradients are zeroed.</summary>
    void StepDone() { }
}

/// <summary>
/// The one training step that <c>train</c>, <c>bench</c>, the BenchmarkDotNet suite and the tests all take: inside
/// a tensor scope, for each of <see cref="Accumulation"/> micro-batches (each in its own scope, so its memory goes
/// back before the next one starts) upload the tokens, forward, the cross-entropy (which overwrites the logits with
/// their gradient: no second [tokens, vocab] buffer), add the loss up on the device, backward; then the clipped
/// AdamW update; then zero the gradients. Nothing is read back: the summed loss and the gradient norm go to a
/// <see cref="DeviceStepLog"/> when one is given.
/// </summary>
public sealed class TrainingStep
{
    private readonly Session device;
    private readonly LanguageModel model;
    private readonly AdamW optimizer;

    public TrainingStep(Session device, LanguageModel model, AdamW optimizer, int accumulation = 1)
    {
        if (accumulation < 1) throw new ArgumentOutOfRangeException(nameof(accumulation), "At least one micro-batch per step.");
        this.device = device;
        this.model = model;
        this.optimizer = optimizer;
        Accumulation = accumulation;
    }

    /// <summary>Micro-batches per optimizer step; each contributes 1/Accumulation of the gradient.</summary>
    public int Accumulation { get; }

    /// <summary>Told where the step and its passes start and end (benchmarks); null when nobody listens.</summary>
    public IStepObserver? Observer { get; set; }

    /// <summary>
    /// Data parallelism: sums the gradients over the ranks, starting buckets during the last backward when it
    /// overlaps, before the clipped update. Each micro-batch's loss is then scaled by 1 / (Accumulation x ranks),
    /// so the sum is the global mean gradient.
    /// </summary>
    public IGradientReducer? Reducer { get; set; }

    /// <summary>
    /// One optimizer step over batches given as host arrays (tests and fixed batches): each is uploaded from
    /// pageable memory, which makes the host wait for the copy on a GPU. Training and benchmarks use
    /// <see cref="Run(BatchPrefetcher, double, DeviceStepLog?)"/>.
    /// </summary>
    public void Run(Func<TokenBatch> next, double learningRate, DeviceStepLog? log = null) =>
        Run(() =>
        {
            var batch = next();
            return TokenIndex.FromBatch(device, batch.Inputs, batch.Targets, batch.BatchSize, batch.SeqLen);
        }, learningRate, log);

    /// <summary>
    /// One optimizer step over batches the prefetcher prepared on its worker thread: each upload is queued on the
    /// main stream from page-locked memory, so a step makes the host wait for nothing.
    /// </summary>
    public void Run(BatchPrefetcher batches, double learningRate, DeviceStepLog? log = null) => Run(batches.Next, learningRate, log);

    /// <summary>
    /// One optimizer step at <paramref name="learningRate"/> over micro-batches that <paramref name="upload"/> puts
    /// on the device (in the micro-batch's scope). The summed micro-batch losses (divide by
    /// <see cref="Accumulation"/> for the mean) and the gradient norm before clipping go to <paramref name="log"/>
    /// on the device.
    /// </summary>
    public void Run(Func<TokenIndex> upload, double learningRate, DeviceStepLog? log = null)
    {
        using (device.BeginScope())
        {
            var lossSum = Tensor.Zeros(device, [1]);
            for (int micro = 0; micro < Accumulation; micro++)
            {
                using var microScope = device.BeginScope();
                var ids = upload();
                if (micro == 0) Observer?.StepStarted();
                // The last micro-batch's backward finishes the gradients: the reducer's buckets can start during it.
                if (micro == Accumulation - 1) device.Tape.Watch = Reducer?.Watch;
                try
                {
                    var loss = Evaluation.Loss(model, ids);
                    device.Kernels.Elementwise.Accumulate(loss.View, lossSum.View); // added up on the device: no wait for the host
                    Observer?.ForwardDone(micro);
                    int parts = Accumulation * (Reducer?.WorldSize ?? 1);
                    device.Tape.Backward(parts == 1 ? loss : Ops.Scale(loss, 1f / parts));
                }
                finally
                {
                    device.Tape.Watch = null;
                }
                Observer?.BackwardDone(micro);
            }
            Reducer?.Reduce();
            optimizer.Step(learningRate);
            log?.Record(lossSum.View, optimizer.GradNormView);
        }
        model.ZeroGrad();
        Observer?.StepDone();
    }
}
