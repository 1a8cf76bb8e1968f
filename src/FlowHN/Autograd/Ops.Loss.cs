using FlowHN.Tensors;

namespace FlowHN.Autograd;

public static partial class Ops
{
    /// <summary>Rows of <paramref name="table"/> [vocab, dim] picked by token ids: output [.., dim].</summary>
    public static Tensor Embedding(TokenIndex ids, Tensor table)
    {
        int dim = table.Dim(1);
        if (ids.MaxId >= table.Dim(0))
            throw new ArgumentException($"Token id {ids.MaxId} is outside the embedding table of {table.Dim(0)} rows.");
        var y = Tensor.Empty(table.Device, [.. ids.Ids.Shape, dim]);
        var k = table.Device.Kernels.Embedding;
        k.Gather(ids.Count, dim, ids.Ids.IntView, table.View, y.View);
        return Record(y, dy => k.ScatterAdd(ids.DistinctCount, dim, ids.DistinctIds.IntView, ids.Starts.IntView,
            ids.Order.IntView, dy.View, Gradients.For(table).View), table);
    }

    /// <summary>
    /// Mean cross-entropy of <paramref name="logits"/> [rows, vocab] (any leading shape) against integer
    /// <paramref name="targets"/>, skipping targets equal to <paramref name="ignoreIndex"/>. Returns a
    /// one-element tensor; nothing is read back to the host.
    /// </summary>
    /// <param name="overwriteLogits">
    /// Write the logits' gradient over the logits themselves (then logits.Grad is the logits tensor). The
    /// logits are the largest activation of a language model ([tokens, vocab]), and the LM head's backward needs
    /// only their gradient; use it when nothing else reads the logits after the loss.
    /// </param>
    public static Tensor CrossEntropy(Tensor logits, Tensor targets, int ignoreIndex = -1, bool overwriteLogits = false)
    {
        int vocab = logits.Dim(-1);
        int rows = (int)(logits.Length / vocab);
        if (targets.Length != rows || targets.DType != DType.Int32)
            throw new ArgumentException($"CrossEntropy: {targets.Length} int targets for {rows} rows of logits.");
        var device = logits.Device;
        var rowLoss = Tensor.Empty(device, [rows]);
        var logSumExp = Tensor.Empty(device, [rows]);
        var loss = Tensor.Empty(device, [2]); // [mean loss, counted rows]
        var k = device.Kernels.CrossEntropy;
        k.Forward(rows, vocab, logits.View, targets.IntView, rowLoss.View, logSumExp.View, loss.View, ignoreIndex);
        var mean = loss.SliceView(0, 1);
        return Record(mean, dMean =>
        {
            if (overwriteLogits && logits.Grad is null && logits.IsContiguous)
            {
                // Each element's gradient depends only on that element (and its row's saved log-sum-exp).
                k.Backward(rows, vocab, logits.View, targets.IntView, logSumExp.View, loss.View, dMean.View, logits.View, ignoreIndex,
                    accumulate: false);
                logits.Grad = logits;
                return;
            }
            k.Backward(rows, vocab, logits.View, targets.IntView, logSumExp.View, loss.View, dMean.View, Gradients.For(logits).View,
                ignoreIndex, accumulate: true);
        }, logits);
    }
}
