using FlowHN.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

/// <summary>Typed entry points for <see cref="AttentionKernels"/>; chooses tile and lanes per device.</summary>
internal sealed class AttentionLauncher : KernelFamily
{
    private const int GpuGroupSize = 128;
    private const int GpuLanesPerRow = 4;
    private const int GpuTile = 32;
    private const int GpuMinTile = 8;
    private const int CpuTile = 16;
    private const int MaxSharedFloats = 48 * 1024 / sizeof(float); // CUDA's default dynamic shared memory limit

    private readonly Action<AcceleratorStream, KernelConfig, AttentionShape, AttentionInputs, ArrayView<float>,
        ArrayView<float>> forward;
    private readonly Action<AcceleratorStream, KernelConfig, AttentionShape, AttentionInputs, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>, ArrayView<float>> backwardQuery;
    private readonly Action<AcceleratorStream, KernelConfig, AttentionShape, AttentionInputs, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>, ArrayView<float>> backwardKeyValue;
    private readonly Action<AcceleratorStream, KernelConfig, int, ArrayView<int>, int> positions;

    public AttentionLauncher(ComputeDevice device, IScratchMemory scratch) : base(device, scratch)
    {
        forward = Load<AttentionShape, AttentionInputs, ArrayView<float>, ArrayView<float>>(AttentionKernels.AttentionForward);
        backwardQuery = Load<AttentionShape, AttentionInputs, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>>(AttentionKernels.AttentionBackwardQuery);
        backwardKeyValue = Load<AttentionShape, AttentionInputs, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>>(AttentionKernels.AttentionBackwardKeyValue);
        positions = Load<int, ArrayView<int>, int>(AttentionKernels.AttentionPositions);
    }

    /// <summary>The sizes of a call with the usual scale 1/sqrt(headDim); geometry is filled in at launch.</summary>
    public static AttentionShape Shape(int batch, int queryLength, int keyLength, int queryHeads, int kvHeads, int headDim)
    {
        if (batch < 1 || queryLength < 1 || keyLength < 1 || queryHeads < 1 || kvHeads < 1 || headDim < 1)
            throw new ArgumentException("Attention sizes must be positive.");
        if (queryHeads % kvHeads != 0)
            throw new ArgumentException($"Attention: {kvHeads} kv heads do not divide {queryHeads} query heads.");
        return new AttentionShape
        {
            Batch = batch, QueryLength = queryLength, KeyLength = keyLength, QueryHeads = queryHeads, KvHeads = kvHeads,
            HeadDim = headDim, Scale = 1f / MathF.Sqrt(headDim),
        };
    }

    /// <summary>o [B, Lq, Hq, D] and lse [B, Hq, Lq] from the inputs.</summary>
    public void Forward(AttentionShape s, AttentionInputs inputs, ArrayView<float> o, ArrayView<float> lse)
    {
        Counters.Kernel();
        var config = Geometry(ref s, s.Batch * s.QueryHeads, s.QueryLength, AttentionKernels.ForwardRowFloats,
            AttentionKernels.ForwardTileFloats);
        forward(Stream, config, s, inputs, o, lse);
    }

    /// <summary>
    /// The gradients += those for output gradient dO, given the forward's o and lse; <paramref name="delta"/>
    /// [B, Hq, Lq] is scratch. With grads.DK and grads.DV both invalid only dq is computed.
    /// </summary>
    public void Backward(AttentionShape s, AttentionInputs inputs, ArrayView<float> o, ArrayView<float> lse,
        ArrayView<float> dO, ArrayView<float> delta, AttentionGradients grads)
    {
        if (grads.DK.IsValid != grads.DV.IsValid)
            throw new ArgumentException("Attention backward: dK and dV must both be given or both be left out.");
        Counters.Kernel();
        var rowConfig = Geometry(ref s, s.Batch * s.QueryHeads, s.QueryLength, AttentionKernels.QueryGradRowFloats,
            AttentionKernels.QueryGradTileFloats);
        backwardQuery(Stream, rowConfig, s, inputs, o, dO, lse, delta, grads.DQ);
        if (!grads.DK.IsValid) return;
        Counters.Kernel();
        var keyConfig = Geometry(ref s, s.Batch * s.KvHeads, s.KeyLength, AttentionKernels.KeyValueGradRowFloats,
            AttentionKernels.KeyValueGradTileFloats);
        backwardKeyValue(Stream, keyConfig, s, inputs, dO, lse, delta, grads.DK, grads.DV);
    }

    /// <summary>positions[i] = first + i.</summary>
    public void Positions(ArrayView<int> target, int first = 0)
    {
        Counters.Kernel();
        int n = Launch.CheckedInt(target.Length, "positions");
        positions(Stream, Launch.Grid1D(Device, n), n, target, first);
    }

    /// <summary>
    /// On a GPU: 128-thread groups of 32 rows with 4 lanes each, 32-row tiles staged in shared memory; where a large
    /// head dim would not fit in 48 KiB, shorter tiles (down to 8 rows), then smaller groups (dK/dV at head dim 64
    /// takes 16-row tiles; head dim 128 8-row tiles and 64-thread groups for the backward; up to about 500 fit). On the CPU accelerator: the device's preset lanes
    /// (1 unless a test asks for more; tiles are staged only with more than one lane, since one lane per row needs
    /// no barrier at all), 16-row tiles and one group per multiprocessor, since starting a group costs microseconds
    /// there. A group owns a block of consecutive rows of one of <paramref name="segments"/> (batch, head) pairs.
    /// </summary>
    private KernelConfig Geometry(ref AttentionShape s, int segments, int length, Func<int, int, int> rowFloats,
        Func<int, int, int> tileFloats)
    {
        int group, tile, lanes, cap;
        bool staged;
        if (Device.IsCuda)
        {
            group = GpuGroupSize;
            tile = GpuTile;
            lanes = Math.Min(GpuLanesPerRow, Device.Accelerator.WarpSize);
            staged = true;
            cap = Device.Accelerator.NumMultiprocessors * 32;
        }
        else
        {
            group = Device.Accelerator.MaxNumThreadsPerGroup;
            tile = CpuTile;
            lanes = Math.Min(Device.Options.CpuLanesPerRow, group);
            staged = lanes > 1; // two lanes of a row share a score strip that only the staged tile barriers protect
            cap = Device.Accelerator.NumMultiprocessors;
        }
        int d = s.HeadDim;
        int SharedFloats(int threads, int rows) => threads + (staged ? tileFloats(d, rows) : 0) + threads / lanes * rowFloats(d, rows);
        // Large head dims on a GPU: shorter tiles first (the group keeps its reuse of each tile), then fewer rows.
        while (Device.IsCuda && SharedFloats(group, tile) > MaxSharedFloats && tile > GpuMinTile) tile /= 2;
        while (Device.IsCuda && SharedFloats(group, tile) > MaxSharedFloats && group > lanes) group /= 2;
        int shared = SharedFloats(group, tile);
        if (shared > MaxSharedFloats)
            throw new ArgumentException($"Attention head dim {d} needs more shared memory than a group may use.");
        s = s with { Tile = tile, LanesPerRow = lanes, StagedTiles = staged ? 1 : 0 };
        int rowsPerGroup = group / lanes;
        long blocks = (long)segments * ((length + rowsPerGroup - 1) / rowsPerGroup);
        int groups = (int)Math.Clamp(blocks, 1, cap);
        return Launch.Config(new Index3D(groups, 1, 1), new Index3D(group, 1, 1), shared);
    }
}
