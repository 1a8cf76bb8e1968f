using FlowHN.Runtime;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

/// <summary>RMSNorm over the last axis: y = x / sqrt(mean(x^2) + eps) * w. One group per row.</summary>
public static class NormKernels
{
    /// <summary>Forward; saves the inverse RMS of every row for the backward.</summary>
    public static void RmsNormForward(int cols, ArrayView<float> x, ArrayView<float> weight, ArrayView<float> y,
        ArrayView<float> inverseRms, float eps)
    {
        var scratch = SharedMemory.GetDynamic<float>();
        long row = Grid.IdxX;
        long start = row * cols;
        float sumSquares = 0f;
        for (int j = Group.IdxX; j < cols; j += Group.DimX)
        {
            float v = x[start + j];
            sumSquares += v * v;
        }
        float total = GroupReduce.Sum(sumSquares, scratch);
        float inv = 1f / XMath.Sqrt(total / cols + eps);
        for (int j = Group.IdxX; j < cols; j += Group.DimX) y[start + j] = x[start + j] * inv * weight[j];
        if (Group.IdxX == 0) inverseRms[row] = inv;
    }

    /// <summary>
    /// dx += r * (w * dy - x * r^2 * mean(dy * w * x)), with r the saved inverse RMS.
    /// The weight gradient is a column sum, done separately (see <see cref="ReduceKernels.ColumnSumPartials"/>).
    /// </summary>
    public static void RmsNormBackward(int cols, ArrayView<float> x, ArrayView<float> weight, ArrayView<float> dy,
        ArrayView<float> inverseRms, ArrayView<float> dx)
    {
        var scratch = SharedMemory.GetDynamic<float>();
        long row = Grid.IdxX;
        long start = row * cols;
        float r = inverseRms[row];
        float dot = 0f;
        for (int j = Group.IdxX; j < cols; j += Group.DimX) dot += dy[start + j] * weight[j] * x[start + j];
        float mean = GroupReduce.Sum(dot, scratch) / cols;
        for (int j = Group.IdxX; j < cols; j += Group.DimX)
            dx[start + j] += r * (weight[j] * dy[start + j] - x[start + j] * r * r * mean);
    }
}

/// <summary>Typed entry points for <see cref="NormKernels"/>.</summary>
public sealed class NormLauncher : KernelFamily
{
    private readonly Action<AcceleratorStream, KernelConfig, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, float> forward;
    private readonly Action<AcceleratorStream, KernelConfig, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> backward;

    public NormLauncher(ComputeDevice device) : base(device)
    {
        forward = Load<int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, float>(NormKernels.RmsNormForward);
        backward = Load<int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(
            NormKernels.RmsNormBackward);
    }

    public void RmsNormForward(int rows, int cols, ArrayView<float> x, ArrayView<float> weight, ArrayView<float> y,
        ArrayView<float> inverseRms, float eps)
    {
        Counters.Kernel();
        forward(Stream, Launch.PerRow(Device, rows, cols), cols, x, weight, y, inverseRms, eps);
    }

    /// <summary>Accumulates dx and dweight.</summary>
    public void RmsNormBackward(int rows, int cols, ArrayView<float> x, ArrayView<float> weight, ArrayView<float> dy,
        ArrayView<float> inverseRms, ArrayView<float> dx, ArrayView<float> dWeight)
    {
        Counters.Kernel();
        if (dx.IsValid) backward(Stream, Launch.PerRow(Device, rows, cols), cols, x, weight, dy, inverseRms, dx);
        if (dWeight.IsValid) Device.Kernels.Reduce.ColumnSum(rows, cols, dy, dWeight, x, inverseRms);
    }
}
