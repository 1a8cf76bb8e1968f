using FlowHN.Autograd;
using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Training;

/// <summary>Validation loss and text generation with a trained model (no gradients).</summary>
public static class Evaluation
{
    /// <summary>Mean next-token loss of a batch (records its backward only when gradients are on).</summary>
    public static Tensor Loss(ComputeDevice device, LanguageModel model, TokenBatch batch)
    {
        var ids = TokenIndex.FromBatch(device, batch.Inputs, batch.Targets, batch.BatchSize, batch.SeqLen);
        return Loss(model, ids);
    }

    /// <summary>Mean next-token loss of a batch already on the device (<see cref="TokenIndex.FromBatch"/>).</summary>
    public static Tensor Loss(LanguageModel model, TokenIndex ids) =>
        Ops.CrossEntropy(model.Forward(ids, ids.Ids.Dim(0), ids.Ids.Dim(1)), ids.Targets!, overwriteLogits: true);

    /// <summary>Mean loss over the first <paramref name="maxBatches"/> non-overlapping windows of the tokens.</summary>
    public static double ValidationLoss(ComputeDevice device, LanguageModel model, int[] tokens, int batch, int seqLen, int maxBatches)
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

    /// <summary>
    /// Continues <paramref name="prompt"/> by <paramref name="count"/> tokens, sampling from softmax(logits / T)
    /// restricted to the <paramref name="topK"/> most likely tokens (temperature 0: greedy). Each new token runs
    /// the whole sequence through the model again: simple, and fine for the sizes trained here.
    /// </summary>
    public static IReadOnlyList<int> Generate(ComputeDevice device, LanguageModel model, IReadOnlyList<int> prompt, int count,
        double temperature, int topK, int seed, Action<int>? onToken = null)
    {
        if (prompt.Count == 0) throw new UserException("The prompt is empty: give at least one token of text.");
        var tokens = prompt.ToList();
        var random = new Random(seed);
        using var noGrad = new NoGradScope(device);
        for (int i = 0; i < count; i++)
        {
            float[] logits;
            using (device.BeginScope())
            {
                var ids = TokenIndex.FromHost(device, tokens.ToArray(), 1, tokens.Count);
                var all = model.Forward(ids, 1, tokens.Count);
                logits = all.ReshapeView(tokens.Count, -1).SliceView(tokens.Count - 1, 1).ToArray();
            }
            int next = Sample(logits, temperature, topK, random);
            tokens.Add(next);
            onToken?.Invoke(next);
        }
        return tokens.Skip(prompt.Count).ToList();
    }

    internal static int Sample(float[] logits, double temperature, int topK, Random random)
    {
        var order = Enumerable.Range(0, logits.Length).OrderByDescending(i => logits[i]).ToArray();
        if (temperature <= 0) return order[0];
        int k = topK > 0 ? Math.Min(topK, order.Length) : order.Length;
        double max = logits[order[0]];
        var weights = order.Take(k).Select(i => Math.Exp((logits[i] - max) / temperature)).ToArray();
        double u = random.NextDouble() * weights.Sum();
        for (int j = 0; j < k; j++)
        {
            u -= weights[j];
            if (u <= 0) return order[j];
        }
        return order[k - 1];
    }
}
