using FlowHN.Kernels;
using FlowHN.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Autograd;

/// <summary>
/// All of a model's parameters in one flat buffer and their gradients in another (as llm.c does): the global
/// gradient norm is one reduction, the optimizer two launches (the weight-decayed parameters come first, then
/// the rest) and zeroing the gradients one memset, whatever the number of parameters. The layout is planned
/// first (each parameter at a 256-byte aligned offset; the padding stays zero), then both buffers are
/// allocated once at their exact size and every parameter becomes a view into them: no parameter ever has
/// memory of its own, so the allocator holds no cached blocks left over from building the model.
/// </summary>
public sealed class ParameterStore : IDisposable
{
    /// <summary>Offsets are multiples of 64 floats (256 bytes).</summary>
    public const int Alignment = 64;
    private readonly Session device;
    private readonly DeviceBlock weights, grads;

    private ParameterStore(Session device, ParameterLayout layout)
    {
        this.device = device;
        Parameters = layout.Ordered;
        Offsets = layout.Offsets;
        DecayLength = layout.DecayLength;
        Length = layout.Length;
        weights = device.Runtime.Allocator.AllocateExact(Math.Max(1, Length));
        grads = device.Runtime.Allocator.AllocateExact(Math.Max(1, Length));
    }

    public IReadOnlyList<Parameter> Parameters { get; }
    public IReadOnlyDictionary<Parameter, long> Offsets { get; }
    /// <summary>Elements [0, DecayLength) hold the weight-decayed parameters, the rest do not decay.</summary>
    public long DecayLength { get; }
    public long Length { get; }
    public ArrayView<float> Weights => weights.View.SubView(0, Length);
    public ArrayView<float> Gradients => grads.View.SubView(0, Length);

    /// <summary>Device bytes of the weight and gradient buffers together.</summary>
    public long Bytes => 2 * Math.Max(1, Length) * sizeof(float);

    /// <summary>Allocates the planned parameters' buffers once and uploads their initial values (gradients zero).</summary>
    public static ParameterStore Allocate(Session device, IReadOnlyList<Parameter> parameters)
    {
        var store = new ParameterStore(device, ParameterLayout.Plan(parameters));
        Launch.ZeroFill(device.Runtime, store.weights.View); // the alignment padding
        Launch.ZeroFill(device.Runtime, store.grads.View);
        foreach (var p in store.Parameters) p.Bind(store, store.weights, store.grads, store.Offsets[p]);
        return store;
    }

    public void ZeroGradients()
    {
        Launch.ZeroFill(device.Runtime, Gradients);
    }

    public void Dispose()
    {
        device.Runtime.Allocator.Free(weights);
        device.Runtime.Allocator.Free(grads);
    }
}

/// <summary>Where each parameter goes in the flat buffers: decayed parameters first, each at an aligned offset.</summary>
public sealed record ParameterLayout(IReadOnlyList<Parameter> Ordered, IReadOnlyDictionary<Parameter, long> Offsets,
    long DecayLength, long Length)
{
    public static ParameterLayout Plan(IReadOnlyList<Parameter> parameters)
    {
        var ordered = parameters.Where(p => p.WeightDecay).Concat(parameters.Where(p => !p.WeightDecay)).ToList();
        var offsets = new Dictionary<Parameter, long>();
        long length = 0, decayLength = 0;
        foreach (var p in ordered)
        {
            offsets[p] = length;
            length += AlignedLength(p.Length);
            if (p.WeightDecay) decayLength = length;
        }
        return new ParameterLayout(ordered, offsets, decayLength, length);
    }

    public static long AlignedLength(long elements) =>
        (elements + ParameterStore.Alignment - 1) / ParameterStore.Alignment * ParameterStore.Alignment;
}
