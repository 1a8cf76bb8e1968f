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

    /// <summary>Mean loss over the first <paramref name="maxBatches"/> non-overlapping windows of the tokens.</summary>
    public static double ValidationLoss(Session device, LanguageModel model, int[] tokens, int batch, int seqLen, int maxBatches)
    {
        double sum = 0;
        int count = 0;
        using (new NoGradScope(device))
            foreach (var b in TokenLoader.EvalBatches(tokens, batch, seqLen, maxBatches))
            {
                using var scope = device.BeginScope();
                sum += Loss(device, model, b).Item();
                count++;
            }
        return sum / count;
    }
}
