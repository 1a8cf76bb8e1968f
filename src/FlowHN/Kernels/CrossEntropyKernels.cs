using FlowHN.Runtime;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

/// <summary>
/// Fused log-softmax + cross-entropy over the vocabulary. The forward keeps only each row's log-sum-exp; the
/// backward recomputes the probabilities from it, so no probability tensor is ever stored.
/// </summary>
public static class CrossEntropyKernels
{
    /// <summary>Per row: lse = log sum exp(logits), loss = lse - logits[target]; ignored rows get 0.</summary>
    public static void Forward(int vocab, ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> rowLoss,
        ArrayView<float> logSumExp, int ignoreIndex)
    {
        var scratch = SharedMemory.GetDynamic<float>();
        long row = Grid.IdxX;
        long start = row * vocab;
        float localMax = float.NegativeInfinity;
        for (int v = Group.IdxX; v < vocab; v += Group.DimX) localMax = XMath.Max(localMax, logits[start + v]);
        float max = GroupReduce.Max(localMax, scratch);
        float localSum = 0f;
        for (int v = Group.IdxX; v < vocab; v += Group.DimX) localSum += XMath.Exp(logits[start + v] - max);
        float lse = max + XMath.Log(GroupReduce.Sum(localSum, scratch));
        if (Group.IdxX == 0)
        {
            int target = targets[row];
            logSumExp[row] = lse;
            rowLoss[row] = target == ignoreIndex ? 0f : lse - logits[start + target];
        }
    }

    /// <summary>
    /// loss[0] = sum(rowLoss) / count, loss[1] = count of rows whose target is not ignored (single group).
    /// </summary>
    public static void Mean(int rows, ArrayView<float> rowLoss, ArrayView<int> targets, ArrayView<float> loss, int ignoreIndex)
    {
        var scratch = SharedMemory.GetDynamic<float>();
        float sum = 0f;
        float count = 0f;
        for (int r = Group.IdxX; r < rows; r += Group.DimX)
        {
            sum += rowLoss[r];
            count += targets[r] == ignoreIndex ? 0f : 1f;
        }
        float totalSum = GroupReduce.Sum(sum, scratch);
        float totalCount = GroupReduce.Sum(count, scratch);
        if (Group.IdxX == 0)
        {
            loss[0] = totalSum / XMath.Max(totalCount, 1f);
            loss[1] = totalCount;
        }
    }

    /// <summary>
    /// dlogits = dloss / count * (softmax(logits) - onehot(target)); rows with an ignored target get zero.
    /// <paramref name="accumulate"/> = 1 adds to dlogits instead of overwriting it.
    /// </summary>
    public static void Backward(int vocab, ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> logSumExp,
        ArrayView<float> loss, ArrayView<float> dLoss, ArrayView<float> dLogits, int ignoreIndex, int accumulate)
    {
        long row = Grid.IdxX;
        long start = row * vocab;
        int target = targets[row];
        float scale = target == ignoreIndex ? 0f : dLoss[0] / XMath.Max(loss[1], 1f);
        float lse = logSumExp[row];
        for (int v = Group.IdxX; v < vocab; v += Group.DimX)
        {
            float p = XMath.Exp(logits[start + v] - lse);
            float g = scale * (p - (v == target ? 1f : 0f));
            dLogits[start + v] = accumulate != 0 ? dLogits[start + v] + g : g;
        }
    }
}

/// <summary>Typed entry points for <see cref="CrossEntropyKernels"/>.</summary>
public sealed class CrossEntropyLauncher : KernelFamily
{
    private readonly Action<AcceleratorStream, KernelConfig, int, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, int> forward;
    private readonly Action<AcceleratorStream, KernelConfig, int, ArrayView<float>, ArrayView<int>, ArrayView<float>, int> mean;
    private readonly Action<AcceleratorStream, KernelConfig, int, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> backward;

    public CrossEntropyLauncher(ComputeDevice device) : base(device)
    {
        forward = Load<int, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, int>(CrossEntropyKernels.Forward);
        mean = Load<int, ArrayView<float>, ArrayView<int>, ArrayView<float>, int>(CrossEntropyKernels.Mean);
        backward = Device.Accelerator.LoadKernel<int, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, int, int>(CrossEntropyKernels.Backward);
        RegisterExtra(CrossEntropyKernels.Backward);
    }

    /// <summary>Writes loss[0] (mean over counted rows) and loss[1] (the count); keeps rowLoss and logSumExp.</summary>
    public void Forward(int rows, int vocab, ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> rowLoss,
        ArrayView<float> logSumExp, ArrayView<float> loss, int ignoreIndex)
    {
        Counters.Kernel();
        Counters.Kernel();
        forward(Stream, Launch.PerRow(Device, rows, vocab), vocab, logits, targets, rowLoss, logSumExp, ignoreIndex);
        int group = Device.GroupSize;
        mean(Stream, Launch.Config(new Index3D(1, 1, 1), new Index3D(group, 1, 1), group), rows, rowLoss, targets, loss, ignoreIndex);
    }

    public void Backward(int rows, int vocab, ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> logSumExp,
        ArrayView<float> loss, ArrayView<float> dLoss, ArrayView<float> dLogits, int ignoreIndex, bool accumulate)
    {
        Counters.Kernel();
        var config = Launch.PerRow(Device, rows, vocab);
        backward(Stream, new KernelConfig(config.GridDim, config.GroupDim), vocab, logits, targets, logSumExp, loss, dLoss,
            dLogits, ignoreIndex, accumulate ? 1 : 0);
    }
}
