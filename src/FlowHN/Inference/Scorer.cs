using FlowHN.Autograd;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Inference;

/// <summary>A continuation to score after a context (token ids; the context must not be empty).</summary>
public sealed record ScoreRequest(int[] Context, int[] Continuation);

/// <summary>The continuation's log-likelihood (natural log) and whether greedy decoding would produce all of it.</summary>
public sealed record ContinuationScore(double LogLikelihood, bool Greedy);

/// <summary>
/// Scores continuations in batches: items are sorted by length, padded on the right to the longest of their
/// batch (causal models: padding after a token never changes its logits; FlowHN routes by absolute position,
/// so padding does not move the routing either) and run through one forward per batch. Per-token losses come
/// from the cross-entropy kernel on the device; logits are downloaded only for the greedy check's rows.
/// An item longer than <c>maxLength + 1</c> tokens keeps its end (the context is cut from the left); a continuation
/// longer than maxLength is kept whole, after one context token (every architecture runs any length).
/// </summary>
public sealed class Scorer
{
    private readonly Session device;
    private readonly LanguageModel model;
    private readonly int maxLength, batch;

    public Scorer(Session device, LanguageModel model, int maxLength, int batch)
    {
        if (batch < 1) throw new UserException($"--batch must be at least 1, got {batch}.");
        if (maxLength < 1) throw new UserException($"--max-length must be at least 1, got {maxLength}.");
        (this.device, this.model, this.maxLength, this.batch) = (device, model, maxLength, batch);
    }

    /// <param name="progress">Called with the number of items done after each batch.</param>
    public ContinuationScore[] Score(IReadOnlyList<ScoreRequest> requests, bool greedy, Action<int>? progress = null)
    {
        var inputs = requests.Select(Window).ToArray();
        var order = Enumerable.Range(0, requests.Count).OrderByDescending(i => inputs[i].Tokens.Length).ToArray();
        var scores = new ContinuationScore[requests.Count];
        using var noGrad = new NoGradScope(device);
        for (int first = 0; first < order.Length; first += batch)
        {
            var items = order.Skip(first).Take(batch).ToArray();
            var batchScores = ScoreBatch(items.Select(i => inputs[i]).ToArray(), greedy);
            for (int j = 0; j < items.Length; j++) scores[items[j]] = batchScores[j];
            progress?.Invoke(first + items.Length);
        }
        return scores;
    }

    private sealed record Input(int[] Tokens, int[] Targets, int Predicted);

    /// <summary>The model's input (all but the last token) and the targets (-1 where nothing is scored).</summary>
    private Input Window(ScoreRequest r, int index)
    {
        if (r.Context.Length == 0) throw new ArgumentException($"Item {index + 1}: the context is empty (start it with the end-of-text token).");
        int n = r.Continuation.Length;
        if (n == 0) throw new UserException($"Item {index + 1}: the continuation has no token.");
        // The context is cut from the left to fit maxLength, but the continuation and one context token are always kept.
        var all = r.Context.Concat(r.Continuation).ToArray();
        all = all[Math.Max(0, all.Length - Math.Max(maxLength, n) - 1)..];
        var tokens = all[..^1];
        var targets = new int[tokens.Length];
        Array.Fill(targets, -1);
        Array.Copy(r.Continuation, 0, targets, tokens.Length - n, n);
        return new Input(tokens, targets, n);
    }

    private ContinuationScore[] ScoreBatch(Input[] items, bool greedy)
    {
        int rows = items.Length, length = items.Max(i => i.Tokens.Length);
        var ids = new int[rows * length];
        var targets = new int[rows * length];
        Array.Fill(targets, -1);
        for (int b = 0; b < rows; b++)
        {
            items[b].Tokens.CopyTo(ids, b * length);
            items[b].Targets.CopyTo(targets, b * length);
        }
        using var scope = device.BeginScope();
        // [rows * length, vocab]: only the vocabulary's logits, whatever padding their rows carry.
        var flat = model.Forward(TokenIndex.FromHost(device, ids, rows, length), rows, length).RowsView();
        int vocab = flat.Dim(1);
        var rowLoss = Tensor.Empty(device, [rows * length]);
        var logSumExp = Tensor.Empty(device, [rows * length]);
        var mean = Tensor.Empty(device, [2]);
        device.Kernels.CrossEntropy.Forward(rows * length, vocab, (int)flat.Strides[0], flat.StridedView,
            Tensor.FromArray(device, targets, rows * length).IntView, rowLoss.View, logSumExp.View, mean.View, -1);
        var losses = rowLoss.ToArray();
        var scores = new ContinuationScore[rows];
        for (int b = 0; b < rows; b++)
        {
            var item = items[b];
            int start = b * length + item.Tokens.Length - item.Predicted;
            double logLikelihood = 0;
            for (int t = 0; t < item.Predicted; t++) logLikelihood -= losses[start + t];
            bool allGreedy = greedy && IsGreedy(flat.SliceView(start, item.Predicted).ToArray(), vocab, item.Targets[^item.Predicted..]);
            scores[b] = new ContinuationScore(logLikelihood, allGreedy);
        }
        return scores;
    }

    /// <summary>Every target is its row's most likely token (ties count as greedy).</summary>
    private static bool IsGreedy(float[] logits, int vocab, int[] targets)
    {
        for (int t = 0; t < targets.Length; t++)
        {
            var row = logits.AsSpan(t * vocab, vocab);
            float target = row[targets[t]];
            foreach (float v in row)
                if (v > target) return false;
        }
        return true;
    }
}
