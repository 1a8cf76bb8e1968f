using FlowHN.Runtime;

namespace FlowHN.Models;

/// <summary>
/// Times each decoder layer of a sequential stack with device events during a forward pass (for
/// <c>flowhn bench --breakdown</c> of shm and jamba): the summed time of the attention layers and of the Mamba
/// layers, each including its MLP.
/// </summary>
public sealed class LayerProfile : IDisposable
{
    private readonly ComputeDevice device;
    private readonly List<(DeviceEvent Start, DeviceEvent End, MixerKind Kind)> pool = new();
    private int used;

    public LayerProfile(ComputeDevice device) => this.device = device;

    public double AttentionMs { get; private set; }
    public double SsmMs { get; private set; }

    internal int Begin(MixerKind kind)
    {
        if (used == pool.Count) pool.Add((device.CreateEvent(timing: true), device.CreateEvent(timing: true), kind));
        else pool[used] = pool[used] with { Kind = kind };
        pool[used].Start.Record(device.CurrentStream);
        return used++;
    }

    internal void End(int layer) => pool[layer].End.Record(device.CurrentStream);

    /// <summary>Adds the times recorded since the last call (waits for them).</summary>
    public void Collect()
    {
        for (int i = 0; i < used; i++)
        {
            double ms = DeviceEvent.ElapsedMilliseconds(pool[i].Start, pool[i].End);
            if (pool[i].Kind == MixerKind.Attention) AttentionMs += ms;
            else if (pool[i].Kind == MixerKind.Mamba) SsmMs += ms;
        }
        used = 0;
    }

    public void Reset() => AttentionMs = SsmMs = 0;

    public void Dispose()
    {
        foreach (var (start, end, _) in pool)
        {
            start.Dispose();
            end.Dispose();
        }
    }
}
