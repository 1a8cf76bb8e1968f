using FlowHN.Runtime;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

/// <summary>RMSNorm over the last axis: y = x / sqrt(mean(x^2) + eps) * w. Rows are walked as in <see cref="RowLoop"/>.</summary>
internal static class NormKernels
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
            float inv = InverseRms(sumSquares, scratch, lanesPerRow, cols, eps);
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
            float mean = MeanOfGradientTimesInput(dy, weight, x, start, count, loop.Lane, lanesPerRow, scratch, cols);
            for (int j = loop.Lane; j < count; j += lanesPerRow)
                dx[start + j] += InputGradient(r, weight[j], dy[start + j], x[start + j], mean);
        }
    }

    /// <summary>
    /// The residual add fused with the norm that follows it: sum = x + y, y_out = RMSNorm(sum) * w, in one pass.
    /// Saves a launch and a read of the sum in every decoder layer.
    /// </summary>
    public static void AddRmsNormForward(int rows, int cols, int lanesPerRow, ArrayView<float> x, ArrayView<float> y,
        ArrayView<float> weight, ArrayView<float> sum, ArrayView<float> normed, ArrayView<float> inverseRms, float eps)
    {
        var scratch = SharedMemory.GetDynamic<float>();
        var loop = RowLoop.Of(lanesPerRow);
        for (int b = loop.Start; b < rows; b += loop.Step)
        {
            int row = b + loop.Offset;
            int count = row < rows ? cols : 0;
            long start = (long)row * cols;
            float sumSquares = 0f;
            for (int j = loop.Lane; j < count; j += lanesPerRow)
            {
                float v = x[start + j] + y[start + j];
                sum[start + j] = v;
                sumSquares += v * v;
            }
            float inv = InverseRms(sumSquares, scratch, lanesPerRow, cols, eps);
            for (int j = loop.Lane; j < count; j += lanesPerRow) normed[start + j] = sum[start + j] * inv * weight[j];
            if (count > 0 && loop.Lane == 0) inverseRms[row] = inv;
        }
    }

    /// <summary>
    /// Backward of <see cref="AddRmsNormForward"/>: g = dSum + RMSNorm'(dNormed), then dx += g and dy += g.
    /// dSum may be an invalid view (the sum had no other use).
    /// </summary>
    public static void AddRmsNormBackward(int rows, int cols, int lanesPerRow, ArrayView<float> sum, ArrayView<float> weight,
        ArrayView<float> dSum, ArrayView<float> dNormed, ArrayView<float> inverseRms, ArrayView<float> dx, ArrayView<float> dy, int hasSumGrad)
    {
        var scratch = SharedMemory.GetDynamic<float>();
        var loop = RowLoop.Of(lanesPerRow);
        for (int b = loop.Start; b < rows; b += loop.Step)
        {
            int row = b + loop.Offset;
            int count = row < rows ? cols : 0;
            long start = (long)row * cols;
            float r = count > 0 ? inverseRms[row] : 0f;
            float mean = MeanOfGradientTimesInput(dNormed, weight, sum, start, count, loop.Lane, lanesPerRow, scratch, cols);
            for (int j = loop.Lane; j < count; j += lanesPerRow)
            {
                long i = start + j;
                float g = InputGradient(r, weight[j], dNormed[i], sum[i], mean) + (hasSumGrad != 0 ? dSum[i] : 0f);
                dx[i] += g;
                dy[i] += g;
            }
        }
    }

    /// <summary>1 / sqrt(mean of squares + eps) of a row, from each lane's partial sum of squares.</summary>
    private static float InverseRms(float sumSquares, ArrayView<float> scratch, int lanesPerRow, int cols, float eps) =>
        1f / XMath.Sqrt(GroupReduce.Sum(sumSquares, scratch, lanesPerRow) / cols + eps);

    /// <summary>mean over the row of dy * w * x (the term every input gradient of the row shares).</summary>
    private static float MeanOfGradientTimesInput(ArrayView<float> dy, ArrayView<float> weight, ArrayView<float> x, long start, int count,
        int lane, int lanesPerRow, ArrayView<float> scratch, int cols)
    {
        float dot = 0f;
        for (int j = lane; j < count; j += lanesPerRow) dot += dy[start + j] * weight[j] * x[start + j];
        return GroupReduce.Sum(dot, scratch, lanesPerRow) / cols;
    }

    /// <summary>d(RMSNorm)/dx for one element: r * (w * dy - x * r^2 * mean(dy * w * x)).</summary>
    private static float InputGradient(float r, float w, float dy, float x, float mean) => r * (w * dy - x * r * r * mean);
}

/// <summary>Typed entry points for <see cref="NormKernels"/>.</summary>
internal sealed class NormLauncher : KernelFamily
{
    private readonly Action<AcceleratorStream, KernelConfig, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, float> forward;
    private readonly Action<AcceleratorStream, KernelConfig, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> backward;
    private readonly Action<AcceleratorStream, KernelConfig, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, float> addForward;
    private readonly Action<AcceleratorStream, KernelConfig, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int> addBackward;
    private readonly Lazy<ReduceLauncher> reduce; // the weight gradient's column sums

    public NormLauncher(ComputeDevice device, IScratchMemory scratch, Lazy<ReduceLauncher> reduce) : base(device, scratch)
    {
        this.reduce = reduce;
        forward = Load<int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, float>(
            NormKernels.RmsNormForward);
        backward = Load<int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(
            NormKernels.RmsNormBackward);
        addForward = Loaded(NormKernels.AddRmsNormForward, () => Device.Accelerator.LoadKernel<int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, float>(NormKernels.AddRmsNormForward));
        addBackward = Loaded(NormKernels.AddRmsNormBackward, () => Device.Accelerator.LoadKernel<int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(NormKernels.AddRmsNormBackward));
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
        if (dWeight.IsValid) reduce.Value.ColumnSum(rows, cols, dy, dWeight, x, inverseRms);
    }

    /// <summary>sum = x + y and normed = RMSNorm(sum) * weight in one launch.</summary>
    public void AddRmsNormForward(int rows, int cols, ArrayView<float> x, ArrayView<float> y, ArrayView<float> weight,
        ArrayView<float> sum, ArrayView<float> normed, ArrayView<float> inverseRms, float eps)
    {
        Counters.Kernel();
        var (config, lanes) = Launch.PerRow(Device, rows, cols);
        addForward(Stream, config, rows, cols, lanes, x, y, weight, sum, normed, inverseRms, eps);
    }

    /// <summary>dx += g, dy += g with g = dSum + the norm's input gradient; dWeight accumulates (invalid views skip).</summary>
    public void AddRmsNormBackward(int rows, int cols, ArrayView<float> sum, ArrayView<float> weight, ArrayView<float> dSum,
        ArrayView<float> dNormed, ArrayView<float> inverseRms, ArrayView<float> dx, ArrayView<float> dy, ArrayView<float> dWeight)
    {
        Counters.Kernel();
        var (config, lanes) = Launch.PerRow(Device, rows, cols);
        addBackward(Stream, config, rows, cols, lanes, sum, weight, dSum.IsValid ? dSum : dNormed, dNormed, inverseRms, dx, dy,
            dSum.IsValid ? 1 : 0);
        if (dWeight.IsValid) reduce.Value.ColumnSum(rows, cols, dNormed, dWeight, sum, inverseRms);
    }
}
