using FlowHN.Runtime;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

/// <summary>RMSNorm over the last axis: y = x / sqrt(mean(x^2) + eps) * w. Rows are walked as in <see cref="RowLoop"/>.</summary>
public static class NormKernels
{
    /// <summary>Forward; saves the inverse RMS of every row for the backward.</summary>
    public static void RmsNormForward(int rows, int cols, int lanesPerRow, ArrayView<float> x, ArrayView<float> weight,
        ArrayView<float> y, ArrayView<float> inverseRms, float eps)
    {
        var scratch = SharedMemory.GetDynamic<float>();
        var loop = RowLoop.Of(lanesPerRow);
        for (int b = loop.Start; b < rows; b += loop.Step)
        {
            int row = b + loop.Offset;
            int count = row < rows ? cols : 0; // threads past the end still join the reduction's barriers
            long start = (long)row * cols;
            float sumSquares = 0f;
            for (int j = loop.Lane; j < count; j += lanesPerRow)
            {
                float v = x[start + j];
                sumSquares += v * v;
            }
            float total = GroupReduce.Sum(sumSquares, scratch, lanesPerRow);
            float inv = 1f / XMath.Sqrt(total / cols + eps);
            for (int j = loop.Lane; j < count; j += lanesPerRow) y[start + j] = x[start + j] * inv * weight[j];
            if (count > 0 && loop.Lane == 0) inverseRms[row] = inv;
        }
    }

    /// <summary>
    /// dx += r * (w * dy - x * r^2 * mean(dy * w * x)), with r the saved inverse RMS.
    /// The weight gradient is a column sum, done separately (see <see cref="ReduceKernels.ColumnSumPartials"/>).
    /// </summary>
    public static void RmsNormBackward(int rows, int cols, int lanesPerRow, ArrayView<float> x, ArrayView<float> weight,
        ArrayView<float> dy, ArrayView<float> inverseRms, ArrayView<float> dx)
    {
        var scratch = SharedMemory.GetDynamic<float>();
        var loop = RowLoop.Of(lanesPerRow);
        for (int b = loop.Start; b < rows; b += loop.Step)
        {
            int row = b + loop.Offset;
            int count = row < rows ? cols : 0;
            long start = (long)row * cols;
            float r = count > 0 ? inverseRms[row] : 0f;
            float dot = 0f;
            for (int j = loop.Lane; j < count; j += lanesPerRow) dot += dy[start + j] * weight[j] * x[start + j];
            float mean = GroupReduce.Sum(dot, scratch, lanesPerRow) / cols;
            for (int j = loop.Lane; j < count; j += lanesPerRow)
                dx[start + j] += r * (weight[j] * dy[start + j] - x[start + j] * r * r * mean);
        }
    }
}

/// <summary>Typed entry points for <see cref="NormKernels"/>.</summary>
public sealed class NormLauncher : KernelFamily
{
    private readonly Action<AcceleratorStream, KernelConfig, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, float> forward;
    private readonly Action<AcceleratorStream, KernelConfig, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> backward;

    public NormLauncher(ComputeDevice device) : base(device)
    {
        forward = Load<int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, float>(
            NormKernels.RmsNormForward);
        backward = Load<int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(
            NormKernels.RmsNormBackward);
    }

    public void RmsNormForward(int rows, int cols, ArrayView<float> x, ArrayView<float> weight, ArrayView<float> y,
        ArrayView<float> inverseRms, float eps)
    {
        Counters.Kernel();
        var (config, lanes) = Launch.PerRow(Device, rows, cols);
        forward(Stream, config, rows, cols, lanes, x, weight, y, inverseRms, eps);
    }

    /// <summary>Accumulates dx and dweight (either may be an invalid view to skip it).</summary>
    public void RmsNormBackward(int rows, int cols, ArrayView<float> x, ArrayView<float> weight, ArrayView<float> dy,
        ArrayView<float> inverseRms, ArrayView<float> dx, ArrayView<float> dWeight)
    {
        if (dx.IsValid)
        {
            Counters.Kernel();
            var (config, lanes) = Launch.PerRow(Device, rows, cols);
            backward(Stream, config, rows, cols, lanes, x, weight, dy, inverseRms, dx);
        }
        if (dWeight.IsValid) Device.Kernels.Reduce.ColumnSum(rows, cols, dy, dWeight, x, inverseRms);
    }
}
