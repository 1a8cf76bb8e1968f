using FlowHN.Tensors;

namespace FlowHN.Autograd;

public static partial class Ops
{
    /// <summary>
    /// Rows of <paramref name="table"/> [rows, dim] picked by token ids: output [.., dim]. Ids must be below
    /// <paramref name="vocab"/> (default: every row), so rows past it (vocabulary padding) are never read and
    /// never get a gradient.
    /// </summary>
    public static Tensor Embedding(TokenIndex ids, Tensor table, int? vocab = null)
    {
        int dim = table.Dim(1), rows = Math.Min(vocab ?? table.Dim(0), table.Dim(0));
        if (ids.MaxId >= rows)
            throw new ArgumentException($"Token id {ids.MaxId} is outside the vocabulary of {rows} tokens.");
        var y = Tensor.Empty(table.Device, [.. ids.Ids.Shape, dim]);
        var k = table.Device.Kernels.Embedding;
        k.Gather(ids.Count, dim, ids.Ids.IntView, table.View, y.View);
        return Record(y, dy => k.ScatterAdd(ids.DistinctCount, dim, ids.DistinctIds.IntView, ids.Starts.IntView,
            ids.Order.IntView, dy.View, Gradients.For(table).View), table);
    }

    /// <summary>
    /// Mean cross-entropy of <paramref name="logits"/> [rows, vocab] (any leading shape) against integer
    /// <paramref name="targets"/>, skipping targets equal to <paramref name="ignoreIndex"/>. Returns a
    /// one-element tensor; nothing is read back to the host. The logits may be a view of the first vocab columns
    /// of wider rows (a language model's logits with vocabulary padding, see <see cref="Linear(Tensor, Tensor, int)"/>):
    /// only those columns are read, so the padding takes no part in the loss and gets no gradient.
    /// </summary>
    /// <param name="overwriteLogits">
    /// Write the logits' gradient over the logits themselves (then logits.Grad is the logits tensor). The
    /// logits are the largest activation of a language model ([tokens, vocab]), and the LM head's backward needs
    /// only their gradient; use it when nothing else reads the logits after the loss.
    /// </param>
    public static Tensor CrossEntropy(Tensor logits, Tensor targets, int ignoreIndex = -1, bool overwriteLogits = false)
    {
        var matrix = logits.RowsView(); // [rows, vocab], rows possibly further apart than vocab
        int rows = matrix.Dim(0), vocab = matrix.Dim(1), stride = (int)matrix.Strides[0];
        if (targets.Length != rows || targets.DType != DType.Int32)
            throw new ArgumentException($"CrossEntropy: {targets.Length} int targets for {rows} rows of logits.");
        var device = logits.Device;
        var rowLoss = Tensor.Empty(device, [rows]);
        var logSumExp = Tensor.Empty(device, [rows]);
        var loss = Tensor.Empty(device, [2]); // [mean loss, counted rows]
        var k = device.Kernels.CrossEntropy;
        k.Forward(rows, vocab, stride, matrix.StridedView, targets.IntView, rowLoss.View, logSumExp.View, loss.View, ignoreIndex);
        var mean = loss.SliceView(0, 1);
        return Record(mean, dMean =>
        {
            if (overwriteLogits && logits.Grad is null)
            {
                // Each element's gradient depends only on that element (and its row's saved log-sum-exp).
                k.Backward(rows, vocab, stride, matrix.StridedView, targets.IntView, logSumExp.View, loss.View, dMean.View,
                    matrix.StridedView, stride, ignoreIndex, accumulate: false);
                logits.Grad = logits;
                return;
            }
            k.Backward(rows, vocab, stride, matrix.StridedView, targets.IntView, logSumExp.View, loss.View, dMean.View,
                Gradients.For(logits).View, vocab, ignoreIndex, accumulate: true);
        }, logits);
    }
}
