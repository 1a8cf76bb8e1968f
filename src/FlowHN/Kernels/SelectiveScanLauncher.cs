using FlowHN.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

/// <summary>Typed entry points for <see cref="SelectiveScanKernels"/>; picks chunk, lanes and channels per thread.</summary>
internal sealed class SelectiveScanLauncher : KernelFamily
{
    private const int GpuGroupSize = 128;
    private const int DefaultChunk = 64;

    private readonly Action<AcceleratorStream, KernelConfig, SelectiveScanShape, SelectiveScanInputs, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, int> forwardLanes;
    private readonly Action<AcceleratorStream, KernelConfig, SelectiveScanShape, SelectiveScanInputs, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, int>? forward;
    private readonly Action<AcceleratorStream, KernelConfig, SelectiveScanShape, SelectiveScanInputs, ArrayView<float>, ArrayView<float>,
        ScanBackwardTargets> backwardLanes;
    private readonly Action<AcceleratorStream, KernelConfig, SelectiveScanShape, SelectiveScanInputs, ArrayView<float>, ArrayView<float>,
        ScanBackwardTargets>? backward;
    private readonly Action<AcceleratorStream, KernelConfig, long, int, ArrayView<float>, ArrayView<float>> sumBlocks;
    private readonly Action<AcceleratorStream, KernelConfig, SelectiveScanShape, ArrayView<float>, ArrayView<float>, ArrayView<float>,
        ArrayView<float>> paramFinish;

    public SelectiveScanLauncher(ComputeDevice device, IScratchMemory scratch) : base(device, scratch)
    {
        forwardLanes = Load<SelectiveScanShape, SelectiveScanInputs, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(
            SelectiveScanKernels.SelectiveScanForwardLanes);
        // The per-channel forward keeps d_state values in a per-thread array: the CPU accelerator's kernel (its
        // warps are narrower than d_state), never launched on a GPU, so it is neither loaded there nor in the
        // PTX kernel list the ptxas gate checks.
        forward = CpuOnly(() => device.Accelerator.LoadKernel<SelectiveScanShape, SelectiveScanInputs, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, int>(SelectiveScanKernels.SelectiveScanForward));
        backwardLanes = Load<SelectiveScanShape, SelectiveScanInputs, ArrayView<float>, ArrayView<float>, ScanBackwardTargets>(
            SelectiveScanKernels.SelectiveScanBackwardLanes);
        backward = CpuOnly(() => device.Accelerator.LoadKernel<SelectiveScanShape, SelectiveScanInputs, ArrayView<float>,
            ArrayView<float>, ScanBackwardTargets>(SelectiveScanKernels.SelectiveScanBackward));
        sumBlocks = Load<long, int, ArrayView<float>, ArrayView<float>>(SelectiveScanKernels.SelectiveScanSumBlocks);
        paramFinish = Load<SelectiveScanShape, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(
            SelectiveScanKernels.SelectiveScanParamGradFinish);
    }

    /// <summary>
    /// The sizes of a call. Chunk 0 takes 64 timesteps between saved states (fewer when d_state is large, so a
    /// chunk's recomputed states fit the per-channel backward's local array, and the lanes backward's shared
    /// memory stays within 33 KB per 128 threads). Lanes over states wherever a warp holds d_state lanes (every
    /// GPU; on the CPU accelerator only presets with that many lanes per row); otherwise the per-channel kernels,
    /// whose backward reduces dB/dC over the device's lanes per row (1 unless a test asks for more). Either way
    /// each thread walks enough channels that the partial rows stay few while every thread still gets work.
    /// </summary>
    public SelectiveScanShape Shape(int batch, int length, int channels, int states, bool hasInitial, int chunk = 0) =>
        ShapeFor(DeviceGeometry, batch, length, channels, states, hasInitial, chunk);

    /// <inheritdoc cref="Shape"/>
    public static SelectiveScanShape ShapeFor(KernelGeometry geometry, int batch, int length, int channels, int states,
        bool hasInitial, int chunk = 0)
    {
        if (batch < 1 || length < 1 || channels < 1 || states < 1)
            throw new ArgumentException("Selective scan sizes must be positive.");
        if (states > SelectiveScanKernels.MaxStates)
            throw new ArgumentException($"Selective scan: d_state {states} exceeds the supported {SelectiveScanKernels.MaxStates}.");
        int maxChunk = DefaultChunk;
        while (SelectiveScanKernels.ChunkFloats(maxChunk, states) > SelectiveScanKernels.ChunkStateFloats) maxChunk--;
        if (chunk <= 0) chunk = maxChunk;
        if (chunk > maxChunk)
            throw new ArgumentException($"Selective scan: chunk {chunk} exceeds {maxChunk} steps for d_state {states}.");
        int lanes, perThread;
        // Lanes over states where a warp (a GPU's, or a test preset's with lanes per row) holds d_state lanes.
        int stateLanes = SelectiveScanKernels.StateLanesFor(states);
        int laneLimit = geometry.IsCuda ? geometry.WarpSize : Math.Min(geometry.CpuLanesPerRow, geometry.WarpSize);
        if (stateLanes > laneLimit) stateLanes = 0;
        if (stateLanes > 0)
        {
            // Backward units: as many pairs side by side as a warp holds (dB/dC summed over them by shuffles), each
            // thread walking enough channels that a block covers 8 on a GPU (the partial rows then take 4 x what a
            // warp of 32 channels would, for d_state x the threads).
            lanes = laneLimit / stateLanes;
            perThread = geometry.IsCuda ? Math.Max(1, 8 / lanes)
                : Math.Clamp(batch * channels / (lanes * 4 * geometry.CpuThreads), 1, 16);
        }
        else // the per-channel kernels (CPU accelerator only: a GPU's warp holds MaxStates lanes)
        {
            lanes = Math.Min(geometry.CpuLanesPerRow, geometry.WarpSize);
            perThread = Math.Clamp(batch * channels / (lanes * 4 * geometry.CpuThreads), 1, 16);
        }
        return new SelectiveScanShape
        {
            Batch = batch, Length = length, Channels = channels, States = states, Chunk = Math.Min(chunk, length),
            HasInitial = hasInitial ? 1 : 0, Lanes = lanes, ChannelsPerThread = perThread, StateLanes = stateLanes,
        };
    }

    /// <summary>
    /// y [B, L, D]; boundaries [B, Chunks, N, D] (saved for the backward) and final [B, D, N] only where valid.
    /// p.Initial is read only when the shape has an initial state.
    /// </summary>
    public void Forward(SelectiveScanShape s, SelectiveScanInputs p, ArrayView<float> y, ArrayView<float> boundaries,
        ArrayView<float> final)
    {
        int outputs = (boundaries.IsValid ? SelectiveScanKernels.SaveBoundaries : 0) |
                      (final.IsValid ? SelectiveScanKernels.WriteFinal : 0);
        Counters.Kernel();
        if (s.StateLanes > 0)
            forwardLanes(Stream, LanesConfig(s.Pairs, s.StateLanes), s, WithDummies(p, y), y, boundaries.IsValid ? boundaries : y,
                final.IsValid ? final : y, outputs);
        else
            PerChannel(forward)(Stream, Launch.Grid1D(Device, s.Pairs), s, WithDummies(p, y), y, boundaries.IsValid ? boundaries : y,
                final.IsValid ? final : y, outputs);
    }

    /// <summary>
    /// Groups for the lanes-over-states kernels, `lanes` threads per (batch, channel): on a GPU 128-thread groups,
    /// one pair per `lanes` threads (capped, the kernels stride over pairs); on the CPU accelerator one group per
    /// multiprocessor.
    /// </summary>
    private KernelConfig LanesConfig(int pairs, int lanes)
    {
        int group = Device.IsCuda ? GpuGroupSize : Device.Accelerator.MaxNumThreadsPerGroup;
        long needed = ((long)pairs * lanes + group - 1) / group;
        int cap = Device.IsCuda ? Device.Accelerator.NumMultiprocessors * 32 : Device.Accelerator.NumMultiprocessors;
        return new KernelConfig(new Index3D((int)Math.Clamp(needed, 1, cap), 1, 1), new Index3D(group, 1, 1));
    }

    /// <summary>Floats of scratch a backward allocates: dB and dC partials per channel block, and the per-channel
    /// parameter partials (plus the initial state's gradient when nobody else takes it).</summary>
    public static long BackwardScratchLength(SelectiveScanShape s, bool initialScratch = false) =>
        2 * s.Blocks * s.StateRowsLength + (long)s.Batch * s.ParamSlots * s.Channels + (initialScratch ? (long)s.Pairs * s.States : 0);

    /// <summary>Floats of the boundary states a training forward saves.</summary>
    public static long BoundaryLength(SelectiveScanShape s) => (long)s.Batch * s.Chunks * s.States * s.Channels;

    /// <summary>
    /// du, ddelta, dz (all [B, L, D]), dDeltaBias [D], dALog [D, N], dB, dC [B, L, N], dSkip [D] and dInitial
    /// [B, D, N] (with an initial state) += the gradients for output gradient dy.
    /// </summary>
    public void Backward(SelectiveScanShape s, SelectiveScanInputs p, ArrayView<float> dy, ArrayView<float> boundaries,
        SelectiveScanGradients grads)
    {
        long rows = s.StateRowsLength;
        // Scratch goes back through the step's scope, on the main stream (safe when branches run on two streams).
        using var partialB = Scratch(s.Blocks * rows);
        using var partialC = Scratch(s.Blocks * rows);
        using var paramPartial = Scratch((long)s.Batch * s.ParamSlots * s.Channels);
        // With an initial state the kernel always writes its gradient: to scratch when nobody wants it.
        bool initialScratch = s.HasInitial != 0 && !grads.DInitial.IsValid;
        using var initialGrad = Scratch(initialScratch ? (long)s.Pairs * s.States : 1);
        var g = new ScanBackwardTargets
        {
            DU = grads.DU, DDelta = grads.DDelta, DZ = grads.DZ,
            DInitial = initialScratch ? initialGrad.View : grads.DInitial.IsValid ? grads.DInitial : grads.DU,
            PartialB = partialB.View, PartialC = partialC.View, ParamPartial = paramPartial.View,
        };
        Counters.Kernel();
        if (s.StateLanes > 0) backwardLanes(Stream, BackwardConfig(s), s, WithDummies(p, dy), dy, boundaries, g);
        else PerChannel(backward)(Stream, BackwardConfig(s), s, WithDummies(p, dy), dy, boundaries, g);
        Counters.Kernel();
        sumBlocks(Stream, Launch.Grid1D(Device, rows), rows, s.Blocks, partialB.View, grads.DB);
        Counters.Kernel();
        sumBlocks(Stream, Launch.Grid1D(Device, rows), rows, s.Blocks, partialC.View, grads.DC);
        Counters.Kernel();
        paramFinish(Stream, Launch.Grid1D(Device, s.ParamSlots * s.Channels), s, paramPartial.View, grads.DALog, grads.DSkip,
            grads.DDeltaBias);
    }

    /// <summary>
    /// Lanes (x StateLanes) x units threads: on a GPU 128-thread groups up to a cap, on the CPU accelerator one
    /// group per multiprocessor (starting a group costs microseconds there), all striding over the units. The
    /// lanes-over-states kernel keeps a chunk's recomputed states in shared memory, Chunk + 1 floats per thread.
    /// </summary>
    private KernelConfig BackwardConfig(SelectiveScanShape s)
    {
        int group = Device.IsCuda ? GpuGroupSize : Device.Accelerator.MaxNumThreadsPerGroup;
        int unitsPerGroup = group / (s.Lanes * Math.Max(1, s.StateLanes));
        int cap = Device.IsCuda ? Device.Accelerator.NumMultiprocessors * 32 : Device.Accelerator.NumMultiprocessors;
        int groups = Math.Clamp((s.BackwardUnits + unitsPerGroup - 1) / unitsPerGroup, 1, cap);
        return Launch.Config(new Index3D(groups, 1, 1), new Index3D(group, 1, 1), s.StateLanes > 0 ? (s.Chunk + 1) * group : 0);
    }

    /// <summary>A per-channel kernel: the CPU accelerator's only (a GPU's warp always holds d_state up to MaxStates lanes).</summary>
    private static T PerChannel<T>(T? kernel) where T : Delegate =>
        kernel ?? throw new InvalidOperationException("The per-channel scan kernels run only on the CPU accelerator.");

    /// <summary>Absent optional inputs still need a real view; the shape says they are never read.</summary>
    private static SelectiveScanInputs WithDummies(SelectiveScanInputs p, ArrayView<float> fallback)
    {
        if (!p.Initial.IsValid) p.Initial = fallback;
        return p;
    }
}

/// <summary>The gradient buffers of a backward, each accumulated (+=); DInitial may be invalid without an initial state.</summary>
internal struct SelectiveScanGradients
{
    public ArrayView<float> DU, DDelta, DDeltaBias, DALog, DB, DC, DSkip, DZ, DInitial;
}
