using FlowHN.Runtime;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

/// <summary>
/// Fused log-softmax + cross-entropy over the vocabulary. The forward keeps only each row's log-sum-exp; the
/// backward recomputes the probabilities from it, so no probability tensor is ever stored.
/// Rows are walked as in <see cref="RowLoop"/>.
/// </summary>
internal static class CrossEntropyKernels
{
    /// <summary>Per row: lse = log sum exp(logits), loss = lse - logits[target]; ignored rows get 0.</summary>
    public static void CrossEntropyForward(int rows, int vocab, int lanesPerRow, ArrayView<float> logits, ArrayView<int> targets,
        ArrayView<float> rowLoss, ArrayView<float> logSumExp, int ignoreIndex)
    {
        var scratch = SharedMemory.GetDynamic<float>();
        var loop = RowLoop.Of(lanesPerRow);
        for (int b = loop.Start; b < rows; b += loop.Step)
        {
            int row = b + loop.Offset;
            int count = row < rows ? vocab : 0; // threads past the end still join the reductions' barriers
            long start = (long)row * vocab;
            float localMax = float.NegativeInfinity;
            for (int v = loop.Lane; v < count; v += lanesPerRow) localMax = XMath.Max(localMax, logits[start + v]);
            float max = GroupReduce.Max(localMax, scratch, lanesPerRow);
            float localSum = 0f;
            for (int v = loop.Lane; v < count; v += lanesPerRow) localSum += XMath.Exp(logits[start + v] - max);
            float lse = max + XMath.Log(GroupReduce.Sum(localSum, scratch, lanesPerRow));
            if (count > 0 && loop.Lane == 0)
            {
                int target = targets[row];
                logSumExp[row] = lse;
                rowLoss[row] = target == ignoreIndex ? 0f : lse - logits[start + target];
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
    /// dlogits = dloss / count * (softmax(logits) - onehot(target)); rows with an ignored target get zero.
    /// <paramref name="accumulate"/> = 1 adds to dlogits instead of overwriting it.
    /// </summary>
    public static void CrossEntropyBackward(int rows, int vocab, int lanesPerRow, ArrayView<float> logits, ArrayView<int> targets,
        ArrayView<float> logSumExp, ArrayView<float> loss, ArrayView<float> dLoss, ArrayView<float> dLogits, int ignoreIndex,
        int accumulate)
    {
        var loop = RowLoop.Of(lanesPerRow);
        float perRow = dLoss[0] / XMath.Max(loss[1], 1f);
        for (int b = loop.Start; b < rows; b += loop.Step)
        {
            int row = b + loop.Offset;
            if (row >= rows) continue; // no barriers here
            long start = (long)row * vocab;
            int target = targets[row];
            float scale = target == ignoreIndex ? 0f : perRow;
            float lse = logSumExp[row];
            for (int v = loop.Lane; v < vocab; v += lanesPerRow)
            {
                float p = XMath.Exp(logits[start + v] - lse);
                float g = scale * (p - (v == target ? 1f : 0f));
                dLogits[start + v] = accumulate != 0 ? dLogits[start + v] + g : g;
            }
        }
    }
}

/// <summary>Typed entry points for <see cref="CrossEntropyKernels"/>.</summary>
internal sealed class CrossEntropyLauncher : KernelFamily
{
    private readonly Action<AcceleratorStream, KernelConfig, int, int, int, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, int> forward;
    private readonly Action<AcceleratorStream, KernelConfig, int, ArrayView<float>, ArrayView<int>, ArrayView<float>, int> mean;
    private readonly Action<AcceleratorStream, KernelConfig, int, int, int, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> backward;

    public CrossEntropyLauncher(ComputeDevice device, IScratchMemory scratch) : base(device, scratch)
    {
        forward = Load<int, int, int, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, int>(CrossEntropyKernels.CrossEntropyForward);
        mean = Load<int, ArrayView<float>, ArrayView<int>, ArrayView<float>, int>(CrossEntropyKernels.CrossEntropyMean);
        backward = Device.Accelerator.LoadKernel<int, int, int, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, int, int>(CrossEntropyKernels.CrossEntropyBackward);
        RegisterExtra(CrossEntropyKernels.CrossEntropyBackward);
    }

    /// <summary>Writes loss[0] (mean over counted rows) and loss[1] (the count); keeps rowLoss and logSumExp.</summary>
    public void Forward(int rows, int vocab, ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> rowLoss,
        ArrayView<float> logSumExp, ArrayView<float> loss, int ignoreIndex)
    {
        Counters.Kernel();
        Counters.Kernel();
        var (config, lanes) = Launch.PerRow(Device, rows, vocab);
        forward(Stream, config, rows, vocab, lanes, logits, targets, rowLoss, logSumExp, ignoreIndex);
        int group = Device.GroupSize;
        mean(Stream, Launch.Config(new Index3D(1, 1, 1), new Index3D(group, 1, 1), group), rows, rowLoss, targets, loss, ignoreIndex);
    }

    public void Backward(int rows, int vocab, ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> logSumExp,
        ArrayView<float> loss, ArrayView<float> dLoss, ArrayView<float> dLogits, int ignoreIndex, bool accumulate)
    {
        Counters.Kernel();
        var (config, lanes) = Launch.PerRow(Device, rows, vocab);
        backward(Stream, new KernelConfig(config.GridDim, config.GroupDim), rows, vocab, lanes, logits, targets, logSumExp, loss,
            dLoss, dLogits, ignoreIndex, accumulate ? 1 : 0);
    }
}
