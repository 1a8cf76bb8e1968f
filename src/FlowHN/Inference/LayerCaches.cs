using FlowHN.Autograd;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Inference;

/// <summary>What one layer keeps between decoding calls of one sequence (attention keys and values, SSM states).</summary>
public interface ILayerCache : IDisposable;

/// <summary>
/// One attention layer's keys and values for one sequence: [capacity, kvHeads, headDim] each (grouped heads, as
/// projected, after the rotary embedding when the layer uses one), with the absolute position of every row.
/// Rows are appended in position order; the capacity doubles when full, so appending costs O(1) amortised.
/// </summary>
public sealed class AttentionCache : ILayerCache
{
    private readonly Session device;
    private readonly int kvHeads, headDim;
    private readonly List<int> positions = new();
    private Tensor keys, values, devicePositions;

    public AttentionCache(Session device, int kvHeads, int headDim, int capacity = 64)
    {
        this.device = device;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        (keys, values, devicePositions) = Allocate(Math.Max(1, capacity));
    }

    /// <summary>Rows held (tokens whose keys this layer has seen).</summary>
    public int Count => positions.Count;

    public int Capacity => keys.Dim(0);

    /// <summary>The held keys as [1, Count, kvHeads, headDim] (a view: valid until the next append).</summary>
    public Tensor Keys => keys.SliceView(0, Count).ReshapeView(1, Count, kvHeads, headDim);

    public Tensor Values => values.SliceView(0, Count).ReshapeView(1, Count, kvHeads, headDim);

    /// <summary>The absolute positions of the held rows, int [Count] (a view).</summary>
    public Tensor Positions => devicePositions.SliceView(0, Count);

    /// <summary>Appends k and v [1, n, kvHeads, headDim] (contiguous) at the given absolute positions.</summary>
    public void Append(Tensor k, Tensor v, IReadOnlyList<int> newPositions)
    {
        int n = newPositions.Count;
        if (k.Length != (long)n * kvHeads * headDim || v.Length != k.Length)
            throw new ArgumentException($"AttentionCache: keys {k.ShapeString} and values {v.ShapeString} do not hold {n} rows.");
        if (n == 0) return;
        if (Count > 0 && newPositions[0] <= positions[^1])
            throw new ArgumentException($"AttentionCache: position {newPositions[0]} does not follow {positions[^1]}.");
        if (Count + n > Capacity) Grow(Math.Max(2 * Capacity, Count + n));
        var copy = device.Kernels.Elementwise;
        copy.Copy(k.View, keys.SliceView(Count, n).View);
        copy.Copy(v.View, values.SliceView(Count, n).View);
        devicePositions.SliceView(Count, n).CopyFrom(newPositions.ToArray());
        positions.AddRange(newPositions);
    }

    private void Grow(int capacity)
    {
        var (k, v, p) = Allocate(capacity);
        if (Count > 0)
        {
            device.Kernels.Elementwise.Copy(Keys.View, k.SliceView(0, Count).View);
            device.Kernels.Elementwise.Copy(Values.View, v.SliceView(0, Count).View);
            p.SliceView(0, Count).CopyFrom(positions.ToArray());
        }
        Dispose();
        (keys, values, devicePositions) = (k, v, p);
    }

    private (Tensor, Tensor, Tensor) Allocate(int capacity) => (
        Tensor.Empty(device, [capacity, kvHeads, headDim], persistent: true),
        Tensor.Empty(device, [capacity, kvHeads, headDim], persistent: true),
        Tensor.Empty(device, [capacity], DType.Int32, persistent: true));

    public void Dispose()
    {
        keys.Dispose();
        values.Dispose();
        devicePositions.Dispose();
    }
}

/// <summary>
/// One Mamba mixer's state for one sequence: the last (conv width - 1) conv inputs [1, W-1, d_inner] and the scan
/// state [1, d_inner, d_state]. Both start absent (zero), as the full forward's do.
/// </summary>
public sealed class MambaCache : ILayerCache
{
    public Tensor? Conv { get; private set; }
    public Tensor? Ssm { get; private set; }

    /// <summary>Keeps copies of the states a segment ended with (the op results belong to the caller's scope).</summary>
    public void Update(Tensor conv, Tensor ssm)
    {
        Conv = Keep(Conv, conv);
        Ssm = Keep(Ssm, ssm);
    }

    private static Tensor Keep(Tensor? held, Tensor latest)
    {
        held ??= Tensor.Empty(latest.Device, latest.Shape, persistent: true);
        latest.Device.Kernels.Elementwise.Copy(latest.View, held.View);
        return held;
    }

    public void Dispose()
    {
        Conv?.Dispose();
        Ssm?.Dispose();
    }
}

/// <summary>
/// The caches of a layer that holds both kinds: a Hymba layer (attention heads and SSM heads) or a FlowHN block
/// (attention branch and SSM branch).
/// </summary>
public sealed class HybridCache(AttentionCache attention, MambaCache mamba) : ILayerCache
{
    public AttentionCache Attention { get; } = attention;
    public MambaCache Mamba { get; } = mamba;

    public void Dispose()
    {
        Attention.Dispose();
        Mamba.Dispose();
    }
}
