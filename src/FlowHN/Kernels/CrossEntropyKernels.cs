using FlowHN.Runtime;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

/// <summary>
/// Fused log-softmax + cross-entropy over the vocabulary. The forward reads each row of logits once (an online
/// max and sum of exponentials, as FlashAttention's softmax) and keeps only the row's log-sum-exp; the backward
/// recomputes the probabilities from it, so no probability tensor is ever stored.
/// <para>Rows sit <c>rowStride</c> floats apart and only their first <c>vocab</c> columns are classes: the LM head
/// computes a vocabulary rounded up to a multiple of 64 (aligned rows for the matrix product), and the padding
/// columns past <c>vocab</c> are never read or written here, so they take no part in the loss and get no
/// gradient. Rows are walked as in <see cref="RowLoop"/>; every reduction has a fixed order (bitwise
/// reproducible).</para>
/// </summary>
internal static class CrossEntropyKernels
{
    /// <summary>
    /// Per row: lse = log sum exp(logits), loss = lse - logits[target]; ignored rows get 0 and a target outside
    /// [0, vocab) gets NaN (a padding id or a bad token must never be scored, and NaN stops training loudly).
    /// </summary>
    public static void CrossEntropyForward(int rows, int vocab, int rowStride, int lanesPerRow, ArrayView<float> logits,
        ArrayView<int> targets, ArrayView<float> rowLoss, ArrayView<float> logSumExp, int ignoreIndex)
    {
        var scratch = SharedMemory.GetDynamic<float>();
        var loop = RowLoop.Of(lanesPerRow);
        for (int b = loop.Start; b < rows; b += loop.Step)
        {
            int row = b + loop.Offset;
            int count = row < rows ? vocab : 0; // threads past the end still join the reductions' barriers
            long start = (long)row * rowStride;
            // One pass: each lane keeps its running max m and sum s = sum exp(x - m), rescaled when m grows.
            float m = float.NegativeInfinity, s = 0f;
            for (int v = loop.Lane; v < count; v += lanesPerRow)
            {
                float x = logits[start + v];
                if (x > m)
                {
                    s = s * XMath.Exp(m - x) + 1f;
                    m = x;
                }
                else
                {
                    s += XMath.Exp(x - m);
                }
            }
            // Combine the lanes: the row max, then each lane's sum moved onto it (a lane with no columns adds 0).
            float max = GroupReduce.Max(m, scratch, lanesPerRow);
            float lse = max + XMath.Log(GroupReduce.Sum(s * XMath.Exp(m - max), scratch, lanesPerRow));
            if (count > 0 && loop.Lane == 0)
            {
                int target = targets[row];
                logSumExp[row] = lse;
                rowLoss[row] = target == ignoreIndex ? 0f
                    : target >= 0 && target < vocab ? lse - logits[start + target]
                    : float.NaN;
            }
        }
    }

    /// <summary>
    /// loss[0] = sum(rowLoss) / count, loss[1] = count of rows whose target is not ignored (single group).
    /// </summary>
    public static void CrossEntropyMean(int rows, ArrayView<float> rowLoss, ArrayView<int> targets, ArrayView<float> loss, int ignoreIndex)
    {
        var scratch = SharedMemory.GetDynamic<float>();
        int lane = Group.IdxX, lanes = Group.DimX;
        float sum = 0f;
        float count = 0f;
        for (int r = lane; r < rows; r += lanes)
        {
            sum += rowLoss[r];
            count += targets[r] == ignoreIndex ? 0f : 1f;
        }
        float totalSum = GroupReduce.Sum(sum, scratch, lanes);
        float totalCount = GroupReduce.Sum(count, scratch, lanes);
        if (lane == 0)
        {
            loss[0] = totalSum / XMath.Max(totalCount, 1f);
            loss[1] = totalCount;
        }
    }

    /// <summary>
    /// dlogits = dloss / count * (softmax(logits) - onehot(target)) over the first <paramref name="vocab"/>
    /// columns; rows with an ignored target get zero. <paramref name="accumulate"/> = 1 adds to dlogits instead of
    /// overwriting it. dlogits may be the logits themselves (same view and stride): each element is read before
    /// its gradient is written, by the same thread.
    /// </summary>
    public static void CrossEntropyBackward(int rows, int vocab, int rowStride, int gradStride, int lanesPerRow,
        ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> logSumExp, ArrayView<float> loss, ArrayView<float> dLoss,
        ArrayView<float> dLogits, int ignoreIndex, int accumulate)
    {
        var loop = RowLoop.Of(lanesPerRow);
        float perRow = dLoss[0] / XMath.Max(loss[1], 1f);
        for (int b = loop.Start; b < rows; b += loop.Step)
        {
            int row = b + loop.Offset;
            if (row >= rows) continue; // no barriers here
            long start = (long)row * rowStride, gradStart = (long)row * gradStride;
            int target = targets[row];
            float scale = target == ignoreIndex ? 0f : perRow;
            float lse = logSumExp[row];
            for (int v = loop.Lane; v < vocab; v += lanesPerRow)
            {
                float p = XMath.Exp(logits[start + v] - lse);
                float g = scale * (p - (v == target ? 1f : 0f));
                dLogits[gradStart + v] = accumulate != 0 ? dLogits[gradStart + v] + g : g;
            }
        }
    }
}

/// <summary>Typed entry points for <see cref="CrossEntropyKernels"/>: views and shape values.</summary>
internal sealed class CrossEntropyLauncher : KernelFamily
{
    private readonly Action<AcceleratorStream, KernelConfig, int, int, int, int, ArrayView<float>, ArrayView<int>, ArrayView<float>,
        ArrayView<float>, int> forward;
    private readonly Action<AcceleratorStream, KernelConfig, int, ArrayView<float>, ArrayView<int>, ArrayView<float>, int> mean;
    private readonly Action<AcceleratorStream, KernelConfig, int, int, int, int, int, ArrayView<float>, ArrayView<int>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> backward;

    public CrossEntropyLauncher(ComputeDevice device, IScratchMemory scratch) : base(device, scratch)
    {
        forward = Loaded(CrossEntropyKernels.CrossEntropyForward, () => Device.Accelerator.LoadKernel<int, int, int, int, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>,
            int>(CrossEntropyKernels.CrossEntropyForward));
        mean = Load<int, ArrayView<float>, ArrayView<int>, ArrayView<float>, int>(CrossEntropyKernels.CrossEntropyMean);
        backward = Loaded(CrossEntropyKernels.CrossEntropyBackward, () => Device.Accelerator.LoadKernel<int, int, int, int, int, ArrayView<float>, ArrayView<int>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(CrossEntropyKernels.CrossEntropyBackward));
    }

    /// <summary>
    /// Writes loss[0] (mean over counted rows) and loss[1] (the count); keeps rowLoss and logSumExp. Row r's
    /// classes are logits[r * rowStride + v] for v &lt; vocab (rowStride &gt;= vocab; the columns between are padding).
    /// </summary>
    public void Forward(int rows, int vocab, int rowStride, ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> rowLoss,
        ArrayView<float> logSumExp, ArrayView<float> loss, int ignoreIndex)
    {
        CheckStride(vocab, rowStride);
        Counters.Kernel();
        Counters.Kernel();
        var (config, lanes) = Launch.PerRow(Device, rows, vocab);
        forward(Stream, config, rows, vocab, rowStride, lanes, logits, targets, rowLoss, logSumExp, ignoreIndex);
        int group = Device.GroupSize;
        mean(Stream, Launch.Config(new Index3D(1, 1, 1), new Index3D(group, 1, 1), group), rows, rowLoss, targets, loss, ignoreIndex);
    }

    /// <summary>
    /// The logits' gradient into dLogits (rows <paramref name="gradStride"/> apart), over the first vocab columns
    /// only. dLogits may be the logits themselves with the same stride.
    /// </summary>
    public void Backward(int rows, int vocab, int rowStride, ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> logSumExp,
        ArrayView<float> loss, ArrayView<float> dLoss, ArrayView<float> dLogits, int gradStride, int ignoreIndex, bool accumulate)
    {
        CheckStride(vocab, rowStride);
        CheckStride(vocab, gradStride);
        Counters.Kernel();
        var (config, lanes) = Launch.PerRow(Device, rows, vocab);
        backward(Stream, new KernelConfig(config.GridDim, config.GroupDim), rows, vocab, rowStride, gradStride, lanes, logits, targets,
            logSumExp, loss, dLoss, dLogits, ignoreIndex, accumulate ? 1 : 0);
    }

    private static void CheckStride(int vocab, int stride)
    {
        if (stride < vocab) throw new ArgumentException($"Cross-entropy rows {stride} floats apart cannot hold {vocab} classes.");
    }
}
