using FlowHN.Autograd;
using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Training;

/// <summary>Validation loss of a trained model (no gradients); generation is in <c>FlowHN.Inference</c>.</summary>
public static class Evaluation
{
    /// <summary>Mean next-token loss of a batch (records its backward only when gradients are on).</summary>
    public static Tensor Loss(Session device, LanguageModel model, TokenBatch batch)
    {
        var ids = TokenIndex.FromBatch(device, batch.Inputs, batch.Targets, batch.BatchSize, batch.SeqLen);
        return Loss(model, ids);
    }

    /// <summary>Mean next-token loss of a batch already on the device (<see cref="TokenIndex.FromBatch"/>).</summary>
    public static Tensor Loss(LanguageModel model, TokenIndex ids) =>
        Ops.CrossEntropy(model.Forward(ids, ids.Ids.Dim(0), ids.Ids.Dim(1)), ids.Targets!, overwriteLogits: true);

    /// <summary>
    /// Mean loss over the first <paramref name="maxBatches"/> non-overlapping windows of the tokens. With a process
    /// group the batches are split across the ranks (batch i on rank i mod ranks) and their losses gathered by a
    /// sum in which every other rank adds zero, then added up in batch order: the same value as one process.
    /// </summary>
    public static double ValidationLoss(Session device, LanguageModel model, int[] tokens, int batch, int seqLen, int maxBatches,
        ProcessGroup? group = null)
    {
        var batches = TokenLoader.EvalBatches(tokens, batch, seqLen, maxBatches).ToList();
        var losses = new double[batches.Count];
        int rank = group?.Rank ?? 0, ranks = group?.Size ?? 1;
        using (new NoGradScope(device))
            for (int i = rank; i < batches.Count; i += ranks)
            {
                using var scope = device.BeginScope();
                losses[i] = Loss(device, model, batches[i]).Item();
            }
        group?.AllReduceSum(losses, "validation losses");
        double sum = 0;
        foreach (double loss in losses) sum += loss;
        return sum / batches.Count;
    }
}
