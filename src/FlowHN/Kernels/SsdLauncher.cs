using FlowHN.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

/// <summary>Typed entry points for <see cref="SsdKernels"/> (Mamba-2's chunked scan).</summary>
internal sealed class SsdLauncher : KernelFamily
{
    /// <summary>The chunk length Q when the caller names none (Mamba-2 trains with 256; 64 keeps the per-thread sums short).</summary>
    public const int DefaultChunk = 64;

    private readonly Action<AcceleratorStream, KernelConfig, SsdShape, SsdInputs, ArrayView<float>> decay;
    private readonly Action<AcceleratorStream, KernelConfig, SsdShape, SsdInputs, ArrayView<float>, ArrayView<float>> chunkStates;
    private readonly Action<AcceleratorStream, KernelConfig, SsdShape, SsdInputs, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>
        statePassing;
    private readonly Action<AcceleratorStream, KernelConfig, SsdShape, SsdInputs, ArrayView<float>, ArrayView<float>, ArrayView<float>,
        ArrayView<float>> output;
    private readonly Action<AcceleratorStream, KernelConfig, SsdShape, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>>
        chunkPairDots;
    private readonly Action<AcceleratorStream, KernelConfig, SsdShape, SsdInputs, ArrayView<float>, ArrayView<float>, ArrayView<float>>
        chunkAdjoint;
    private readonly Action<AcceleratorStream, KernelConfig, SsdShape, ArrayView<float>, ArrayView<float>, ArrayView<float>> adjointPassing;
    private readonly Action<AcceleratorStream, KernelConfig, SsdShape, SsdInputs, ArrayView<float>, SsdBackwardWork, ArrayView<float>>
        backwardX;
    private readonly Action<AcceleratorStream, KernelConfig, SsdShape, SsdInputs, ArrayView<float>, ArrayView<float>, SsdBackwardWork>
        rowSums;
    private readonly Action<AcceleratorStream, KernelConfig, SsdShape, SsdInputs, SsdBackwardWork, ArrayView<float>> dtScan, backwardB;
    private readonly Action<AcceleratorStream, KernelConfig, SsdShape, SsdInputs, ArrayView<float>, SsdGradientViews> paramFinish;
    private readonly Action<AcceleratorStream, KernelConfig, SsdShape, SsdInputs, ArrayView<float>, ArrayView<float>, SsdBackwardWork,
        ArrayView<float>> backwardC;

    public SsdLauncher(ComputeDevice device, IScratchMemory scratch) : base(device, scratch)
    {
        decay = Load<SsdShape, SsdInputs, ArrayView<float>>(SsdKernels.SsdDecay);
        chunkStates = Load<SsdShape, SsdInputs, ArrayView<float>, ArrayView<float>>(SsdKernels.SsdChunkStates);
        statePassing = Load<SsdShape, SsdInputs, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(SsdKernels.SsdStatePassing);
        output = Load<SsdShape, SsdInputs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(SsdKernels.SsdOutput);
        chunkPairDots = Load<SsdShape, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>>(SsdKernels.SsdChunkPairDots);
        chunkAdjoint = Load<SsdShape, SsdInputs, ArrayView<float>, ArrayView<float>, ArrayView<float>>(SsdKernels.SsdChunkAdjoint);
        adjointPassing = Load<SsdShape, ArrayView<float>, ArrayView<float>, ArrayView<float>>(SsdKernels.SsdAdjointPassing);
        backwardX = Load<SsdShape, SsdInputs, ArrayView<float>, SsdBackwardWork, ArrayView<float>>(SsdKernels.SsdBackwardX);
        rowSums = Load<SsdShape, SsdInputs, ArrayView<float>, ArrayView<float>, SsdBackwardWork>(SsdKernels.SsdRowSums);
        dtScan = Load<SsdShape, SsdInputs, SsdBackwardWork, ArrayView<float>>(SsdKernels.SsdDtScan);
        paramFinish = Load<SsdShape, SsdInputs, ArrayView<float>, SsdGradientViews>(SsdKernels.SsdParamFinish);
        backwardC = Load<SsdShape, SsdInputs, ArrayView<float>, ArrayView<float>, SsdBackwardWork, ArrayView<float>>(SsdKernels.SsdBackwardC);
        backwardB = Load<SsdShape, SsdInputs, SsdBackwardWork, ArrayView<float>>(SsdKernels.SsdBackwardB);
    }

    /// <summary>The sizes of a call; chunk 0 takes <see cref="DefaultChunk"/> (never more than the length).</summary>
    public static SsdShape Shape(int batch, int length, int heads, int headDim, int groups, int states, bool hasInitial, int chunk = 0)
    {
        if (batch < 1 || length < 1 || heads < 1 || headDim < 1 || groups < 1 || states < 1)
            throw new ArgumentException("SSD sizes must be positive.");
        if (heads % groups != 0)
            throw new ArgumentException($"SSD: {heads} heads do not split into {groups} B/C groups.");
        if (chunk < 0) throw new ArgumentException($"SSD: chunk {chunk} must be positive (or 0 for the default).");
        if (chunk == 0) chunk = DefaultChunk;
        var s = new SsdShape
        {
            Batch = batch, Length = length, Heads = heads, HeadDim = headDim, Groups = groups, States = states,
            Chunk = Math.Min(chunk, length), HasInitial = hasInitial ? 1 : 0,
        };
        Launch.CheckedInt(Math.Max(s.ChunkStatesLength, Math.Max(s.ScoresLength, Math.Max(s.PairDotsLength, s.XLength))), "An SSD buffer");
        return s;
    }

    /// <summary>
    /// y [B, L, H, P]; states [B, Chunks, H, P, N] receives the state entering every chunk (a training forward
    /// keeps it for the backward; pass an invalid view to use scratch); final [B, H, P, N] only where valid.
    /// </summary>
    public void Forward(SsdShape s, SsdInputs p, ArrayView<float> y, ArrayView<float> states, ArrayView<float> final)
    {
        p = WithDummies(p, y);
        using var decayBuffer = Scratch(s.DecayLength);
        using var scoreBuffer = Scratch(s.ScoresLength);
        using var stateScratch = Scratch(states.IsValid ? 1 : s.ChunkStatesLength);
        var stateView = states.IsValid ? states : stateScratch.View;
        Prepare(s, p, decayBuffer.View, scoreBuffer.View);
        Counters.Kernel();
        chunkStates(Stream, Launch.Grid1D(Device, s.ChunkStatesLength), s, p, decayBuffer.View, stateView);
        Counters.Kernel();
        statePassing(Stream, Launch.Grid1D(Device, (long)s.Batch * s.Heads * s.StateSize), s, p, decayBuffer.View, stateView,
            final.IsValid ? final : y, final.IsValid ? 1 : 0);
        Counters.Kernel();
        output(Stream, Launch.Grid1D(Device, s.XLength), s, p, decayBuffer.View, scoreBuffer.View, stateView, y);
    }

    /// <summary>
    /// Floats of the scratch a forward allocates: dt and the cumulative sums, the scores and, unless the caller keeps
    /// the chunk states, those too (one float stands in otherwise). Inside a step's scope it lives until the layer's release.
    /// </summary>
    public static long ForwardScratchLength(SsdShape s, bool keepsStates) =>
        s.DecayLength + s.ScoresLength + (keepsStates ? 1 : s.ChunkStatesLength);

    /// <summary>Floats of the scratch a backward allocates (one float stands in for an absent initial state's gradient).</summary>
    public static long BackwardScratchLength(SsdShape s, bool initialScratch = false) =>
        s.DecayLength + s.ScoresLength + s.PairDotsLength + s.ChunkStatesLength + s.XLength +
        (long)s.Batch * s.Length * s.Heads * SsdKernels.RowSlots + (long)s.Batch * s.Heads * SsdKernels.ParamSlots +
        (initialScratch ? (long)s.Batch * s.Heads * s.StateSize : 1);

    /// <summary>
    /// Every gradient += its share for output gradient dy, given the forward's output y and the states it kept.
    /// DInitial is written only with an initial state (scratch takes it when the view is invalid).
    /// </summary>
    public void Backward(SsdShape s, SsdInputs p, ArrayView<float> dy, ArrayView<float> y, ArrayView<float> states,
        SsdGradientViews grads)
    {
        p = WithDummies(p, y);
        using var decayBuffer = Scratch(s.DecayLength);
        using var scoreBuffer = Scratch(s.ScoresLength);
        using var pairBuffer = Scratch(s.PairDotsLength);
        using var adjointBuffer = Scratch(s.ChunkStatesLength);
        using var wBuffer = Scratch(s.XLength);
        using var rowBuffer = Scratch((long)s.Batch * s.Length * s.Heads * SsdKernels.RowSlots);
        using var paramBuffer = Scratch((long)s.Batch * s.Heads * SsdKernels.ParamSlots);
        bool initialScratch = s.HasInitial != 0 && !grads.DInitial.IsValid;
        using var initialBuffer = Scratch(initialScratch ? (long)s.Batch * s.Heads * s.StateSize : 1);
        if (!grads.DInitial.IsValid) grads.DInitial = initialBuffer.View;
        var work = new SsdBackwardWork
        {
            Decay = decayBuffer.View, Scores = scoreBuffer.View, PairDots = pairBuffer.View, Adjoint = adjointBuffer.View,
            W = wBuffer.View, Rows = rowBuffer.View, ParamPartial = paramBuffer.View,
        };
        Prepare(s, p, work.Decay, work.Scores);
        Counters.Kernel();
        chunkPairDots(Stream, Launch.Grid1D(Device, s.PairDotsLength), s, s.Heads, s.HeadDim, dy, p.X, work.PairDots);
        Counters.Kernel();
        chunkAdjoint(Stream, Launch.Grid1D(Device, s.ChunkStatesLength), s, p, dy, work.Decay, work.Adjoint);
        Counters.Kernel();
        adjointPassing(Stream, Launch.Grid1D(Device, (long)s.Batch * s.Heads * s.StateSize), s, work.Decay, work.Adjoint, grads.DInitial);
        Counters.Kernel();
        backwardX(Stream, Launch.Grid1D(Device, s.XLength), s, p, dy, work, grads.DX);
        Counters.Kernel();
        rowSums(Stream, Launch.Grid1D(Device, (long)s.Batch * s.Length * s.Heads), s, p, dy, y, work);
        Counters.Kernel();
        dtScan(Stream, Launch.Grid1D(Device, (long)s.Batch * s.Heads), s, p, work, grads.DDt);
        Counters.Kernel();
        paramFinish(Stream, Launch.Grid1D(Device, s.Heads), s, p, work.ParamPartial, grads);
        long bcLength = (long)s.Batch * s.Length * s.Groups * s.States;
        Counters.Kernel();
        backwardC(Stream, Launch.Grid1D(Device, bcLength), s, p, dy, states, work, grads.DC);
        Counters.Kernel();
        backwardB(Stream, Launch.Grid1D(Device, bcLength), s, p, work, grads.DB);
    }

    /// <summary>dt, the within-chunk cumulative sums and the C . B scores, which forward and backward both need.</summary>
    private void Prepare(SsdShape s, SsdInputs p, ArrayView<float> decayView, ArrayView<float> scoreView)
    {
        Counters.Kernel();
        decay(Stream, Launch.Grid1D(Device, (long)s.Batch * s.Heads * s.Chunks), s, p, decayView);
        Counters.Kernel();
        chunkPairDots(Stream, Launch.Grid1D(Device, s.ScoresLength), s, s.Groups, s.States, p.C, p.B, scoreView);
    }

    /// <summary>Absent optional inputs still need a real view; the shape says they are never read.</summary>
    private static SsdInputs WithDummies(SsdInputs p, ArrayView<float> fallback)
    {
        if (!p.Initial.IsValid) p.Initial = fallback;
        return p;
    }
}
