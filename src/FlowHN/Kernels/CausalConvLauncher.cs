using FlowHN.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

/// <summary>Typed entry points for <see cref="CausalConvKernels"/>; picks the chunk of timesteps per thread.</summary>
internal sealed class CausalConvLauncher : KernelFamily
{
    private readonly Action<AcceleratorStream, KernelConfig, CausalConvShape, ArrayView<float>, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>> forward;
    private readonly Action<AcceleratorStream, KernelConfig, CausalConvShape, ArrayView<float>, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> backward;
    private readonly Action<AcceleratorStream, KernelConfig, CausalConvShape, ArrayView<float>, ArrayView<float>, ArrayView<float>> finish;
    private readonly Action<AcceleratorStream, KernelConfig, CausalConvShape, ArrayView<float>, ArrayView<float>, ArrayView<float>> tail;

    public CausalConvLauncher(ComputeDevice device, IScratchMemory scratch) : base(device, scratch)
    {
        forward = Load<CausalConvShape, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(
            CausalConvKernels.CausalConvForward);
        backward = Loaded(CausalConvKernels.CausalConvBackward, () => Device.Accelerator.LoadKernel<CausalConvShape, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(CausalConvKernels.CausalConvBackward));
        finish = Load<CausalConvShape, ArrayView<float>, ArrayView<float>, ArrayView<float>>(CausalConvKernels.CausalConvWeightGradFinish);
        tail = Load<CausalConvShape, ArrayView<float>, ArrayView<float>, ArrayView<float>>(CausalConvKernels.CausalConvTail);
    }

    /// <summary>The sizes of a call; chunk 0 picks the timesteps per thread for the device.</summary>
    public CausalConvShape Shape(int batch, int length, int channels, int width, bool silu, bool hasState, int chunk = 0) =>
        ShapeFor(DeviceGeometry, batch, length, channels, width, silu, hasState, chunk);

    /// <inheritdoc cref="Shape"/>
    public static CausalConvShape ShapeFor(KernelGeometry geometry, int batch, int length, int channels, int width, bool silu,
        bool hasState, int chunk = 0)
    {
        if (batch < 1 || length < 1 || channels < 1)
            throw new ArgumentException("Causal conv sizes must be positive.");
        if (width < 1 || width > CausalConvKernels.MaxWidth)
            throw new ArgumentException($"Causal conv width {width} is not supported (1..{CausalConvKernels.MaxWidth}).");
        if (hasState && width < 2) throw new ArgumentException("A causal conv of width 1 has no state.");
        if (chunk <= 0) chunk = DefaultChunk(geometry, batch, length, channels);
        return new CausalConvShape
        {
            Batch = batch, Length = length, Channels = channels, Width = width, Silu = silu ? 1 : 0,
            HasState = hasState ? 1 : 0, Chunk = Math.Min(chunk, length),
        };
    }

    /// <summary>Floats of scratch a backward allocates: the weight and bias partials of every chunk.</summary>
    public static long BackwardScratchLength(CausalConvShape s) => (long)s.PartialRows * CausalConvKernels.PartialSlots * s.Channels;

    /// <summary>
    /// 64 steps on a GPU (B 8, L 1024, D 1536 then gives 196k threads). On the CPU accelerator whole sequences,
    /// split only when there are too few (batch, channel) pairs to keep every thread busy.
    /// </summary>
    private static int DefaultChunk(KernelGeometry geometry, int batch, int length, int channels)
    {
        if (geometry.IsCuda) return 64;
        int splits = Math.Max(1, 8 * geometry.CpuThreads / (batch * channels));
        return (length + splits - 1) / splits;
    }

    /// <summary>y [B, L, D] from x [B, L, D], weight [D, W], bias [D], state [B, W-1, D] (ignored without one).</summary>
    public void Forward(CausalConvShape s, ArrayView<float> x, ArrayView<float> weight, ArrayView<float> bias,
        ArrayView<float> state, ArrayView<float> y)
    {
        Counters.Kernel();
        forward(Stream, Launch.Grid1D(Device, s.Units), s, x, weight, bias, OrDummy(state, x), y);
    }

    /// <summary>dx, dWeight, dBias and dState (when valid) += the gradients for output gradient dy.</summary>
    public void Backward(CausalConvShape s, ArrayView<float> x, ArrayView<float> weight, ArrayView<float> bias,
        ArrayView<float> state, ArrayView<float> dy, ArrayView<float> dx, ArrayView<float> dWeight, ArrayView<float> dBias,
        ArrayView<float> dState)
    {
        // Scratch goes back through the step's scope, on the main stream (safe when branches run on two streams).
        using var partial = Scratch(BackwardScratchLength(s));
        // With a state the kernel always writes its gradient: to scratch when nobody wants it.
        bool stateScratch = s.HasState != 0 && !dState.IsValid;
        using var stateGrad = Scratch(stateScratch ? (long)s.Batch * (s.Width - 1) * s.Channels : 1);
        Counters.Kernel();
        backward(Stream, Launch.Grid1D(Device, s.Units), s, x, weight, bias, OrDummy(state, x), dy, dx,
            stateScratch ? stateGrad.View : OrDummy(dState, dx), partial.View);
        Counters.Kernel();
        finish(Stream, Launch.Grid1D(Device, (s.Width + 1) * s.Channels), s, partial.View, dWeight, dBias);
    }

    /// <summary>The last W-1 inputs of state ++ x, [B, W-1, D]: the state that continues the convolution.</summary>
    public void Tail(CausalConvShape s, ArrayView<float> x, ArrayView<float> state, ArrayView<float> tailState)
    {
        Counters.Kernel();
        tail(Stream, Launch.Grid1D(Device, tailState.Length), s, x, OrDummy(state, x), tailState);
    }

    /// <summary>Kernels never read an absent state (the shape says so), but every parameter must be a real view.</summary>
    private static ArrayView<float> OrDummy(ArrayView<float> view, ArrayView<float> fallback) => view.IsValid ? view : fallback;
}
