using FlowHN.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

internal enum UnaryOp { Silu, Softplus, Exp }

/// <summary>Typed entry points for <see cref="ElementwiseKernels"/>.</summary>
internal sealed class ElementwiseLauncher : KernelFamily
{
    private readonly Dictionary<UnaryOp, Action<AcceleratorStream, KernelConfig, int, ArrayView<float>, ArrayView<float>>> map;
    private readonly Dictionary<UnaryOp, Action<AcceleratorStream, KernelConfig, int, ArrayView<float>, ArrayView<float>, ArrayView<float>>> mapBackward;
    private readonly Action<AcceleratorStream, KernelConfig, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, float, float> linear;
    private readonly Action<AcceleratorStream, KernelConfig, int, ArrayView<float>, ArrayView<float>, ArrayView<float>> multiply;
    private readonly Action<AcceleratorStream, KernelConfig, int, ArrayView<float>, ArrayView<float>, ArrayView<float>> multiplyAccumulate;
    private readonly Action<AcceleratorStream, KernelConfig, int, ArrayView<float>, float> fill;
    private readonly Action<AcceleratorStream, KernelConfig, int, ArrayView<float>, ArrayView<float>, float> accumulateScalar;
    private readonly Action<AcceleratorStream, KernelConfig, int, ArrayView<float>, ArrayView<float>, ArrayView<float>> swiGlu;
    private readonly Action<AcceleratorStream, KernelConfig, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> swiGluBackward;
    private readonly Action<AcceleratorStream, KernelConfig, int, ArrayView<float>, ArrayView<float>, StridedLayout> stridedCopy;
    private readonly Action<AcceleratorStream, KernelConfig, int, ArrayView<float>, ArrayView<float>, StridedLayout> stridedAccumulate;

    public ElementwiseLauncher(ComputeDevice device, IScratchMemory scratch) : base(device, scratch)
    {
        map = new()
        {
            [UnaryOp.Silu] = Load<int, ArrayView<float>, ArrayView<float>>(ElementwiseKernels.SiluForward),
            [UnaryOp.Softplus] = Load<int, ArrayView<float>, ArrayView<float>>(ElementwiseKernels.SoftplusForward),
            [UnaryOp.Exp] = Load<int, ArrayView<float>, ArrayView<float>>(ElementwiseKernels.ExpForward),
        };
        mapBackward = new()
        {
            [UnaryOp.Silu] = Load<int, ArrayView<float>, ArrayView<float>, ArrayView<float>>(ElementwiseKernels.SiluBackward),
            [UnaryOp.Softplus] = Load<int, ArrayView<float>, ArrayView<float>, ArrayView<float>>(ElementwiseKernels.SoftplusBackward),
            [UnaryOp.Exp] = Load<int, ArrayView<float>, ArrayView<float>, ArrayView<float>>(ElementwiseKernels.ExpBackward),
        };
        linear = Load<int, ArrayView<float>, ArrayView<float>, ArrayView<float>, float, float>(ElementwiseKernels.LinearCombination);
        multiply = Load<int, ArrayView<float>, ArrayView<float>, ArrayView<float>>(ElementwiseKernels.Multiply);
        multiplyAccumulate = Load<int, ArrayView<float>, ArrayView<float>, ArrayView<float>>(ElementwiseKernels.MultiplyAccumulate);
        fill = Load<int, ArrayView<float>, float>(ElementwiseKernels.Fill);
        accumulateScalar = Load<int, ArrayView<float>, ArrayView<float>, float>(ElementwiseKernels.AccumulateScalar);
        swiGlu = Load<int, ArrayView<float>, ArrayView<float>, ArrayView<float>>(ElementwiseKernels.SwiGlu);
        swiGluBackward = Load<int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(
            ElementwiseKernels.SwiGluBackward);
        stridedCopy = Load<int, ArrayView<float>, ArrayView<float>, StridedLayout>(ElementwiseKernels.StridedCopy);
        stridedAccumulate = Load<int, ArrayView<float>, ArrayView<float>, StridedLayout>(ElementwiseKernels.StridedAccumulate);
    }

    private KernelConfig Grid(ArrayView<float> y)
    {
        Counters.Kernel();
        return Launch.Grid1D(Device, y.Length);
    }

    private static int N(ArrayView<float> y) => Launch.CheckedInt(y.Length, "element-wise operand");

    public void Map(UnaryOp op, ArrayView<float> x, ArrayView<float> y) => map[op](Stream, Grid(y), N(y), x, y);

    public void MapBackward(UnaryOp op, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx) =>
        mapBackward[op](Stream, Grid(dx), N(dx), x, dy, dx);

    /// <summary>y = alpha * a + beta * b.</summary>
    public void LinearCombination(ArrayView<float> a, ArrayView<float> b, ArrayView<float> y, float alpha, float beta) =>
        linear(Stream, Grid(y), N(y), a, b, y, alpha, beta);

    /// <summary>y += alpha * x.</summary>
    public void Accumulate(ArrayView<float> x, ArrayView<float> y, float alpha = 1f) => LinearCombination(x, y, y, alpha, 1f);

    public void Copy(ArrayView<float> x, ArrayView<float> y) => LinearCombination(x, y, y, 1f, 0f);

    public void Scale(ArrayView<float> x, ArrayView<float> y, float alpha) => LinearCombination(x, y, y, alpha, 0f);

    public void Multiply(ArrayView<float> a, ArrayView<float> b, ArrayView<float> y) => multiply(Stream, Grid(y), N(y), a, b, y);

    public void MultiplyAccumulate(ArrayView<float> a, ArrayView<float> b, ArrayView<float> y) =>
        multiplyAccumulate(Stream, Grid(y), N(y), a, b, y);

    public void Fill(ArrayView<float> y, float value) => fill(Stream, Grid(y), N(y), y, value);

    /// <summary>y += alpha * scalar[0].</summary>
    public void AccumulateScalar(ArrayView<float> scalar, ArrayView<float> y, float alpha) =>
        accumulateScalar(Stream, Grid(y), N(y), scalar, y, alpha);

    public void SwiGlu(ArrayView<float> a, ArrayView<float> b, ArrayView<float> y) => swiGlu(Stream, Grid(y), N(y), a, b, y);

    public void SwiGluBackward(ArrayView<float> a, ArrayView<float> b, ArrayView<float> dy, ArrayView<float> da, ArrayView<float> db) =>
        swiGluBackward(Stream, Grid(dy), N(dy), a, b, dy, da, db);

    /// <summary>
    /// Copies a strided view of rank up to 4 (its memory from its first element on, and its shape and strides)
    /// into contiguous <paramref name="y"/> of the same shape.
    /// </summary>
    public void StridedCopy(ArrayView<float> x, StridedLayout xLayout, ArrayView<float> y) =>
        stridedCopy(Stream, Grid(y), N(y), x, y, xLayout);

    /// <summary>y (a strided view of rank up to 4, laid out as <paramref name="yLayout"/>) += x (contiguous).</summary>
    public void StridedAccumulate(ArrayView<float> x, ArrayView<float> y, StridedLayout yLayout) =>
        stridedAccumulate(Stream, Grid(x), N(x), x, y, yLayout);
}
