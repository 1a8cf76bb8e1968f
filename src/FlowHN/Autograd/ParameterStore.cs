using FlowHN.Runtime;
using FlowHN.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Autograd;

/// <summary>
/// All of a model's parameters in one flat buffer and their gradients in another (as llm.c does): the global
/// gradient norm is one reduction, the optimizer two launches (the weight-decayed parameters come first, then
/// the rest) and zeroing the gradients one memset, whatever the number of parameters. Each parameter becomes a
/// view at a 256-byte aligned offset; the padding stays zero.
/// </summary>
public sealed class ParameterStore : IDisposable
{
    private const int Alignment = 64; // floats
    private readonly ComputeDevice device;
    private readonly DeviceBlock weights, grads;

    private ParameterStore(ComputeDevice device, IReadOnlyList<Parameter> parameters, DeviceBlock weights, DeviceBlock grads,
        long decayLength, long length, IReadOnlyDictionary<Parameter, long> offsets)
    {
        this.device = device;
        Parameters = parameters;
        this.weights = weights;
        this.grads = grads;
        DecayLength = decayLength;
        Length = length;
        Offsets = offsets;
    }

    public IReadOnlyList<Parameter> Parameters { get; }
    public IReadOnlyDictionary<Parameter, long> Offsets { get; }
    /// <summary>Elements [0, DecayLength) hold the weight-decayed parameters, the rest do not decay.</summary>
    public long DecayLength { get; }
    public long Length { get; }
    public ArrayView<float> Weights => weights.View.SubView(0, Length);
    public ArrayView<float> Gradients => grads.View.SubView(0, Length);

    /// <summary>Moves the parameters (values kept, gradients zeroed) into one weight and one gradient buffer.</summary>
    public static ParameterStore Pack(ComputeDevice device, IReadOnlyList<Parameter> parameters)
    {
        var ordered = parameters.Where(p => p.WeightDecay).Concat(parameters.Where(p => !p.WeightDecay)).ToList();
        var offsets = new Dictionary<Parameter, long>();
        long length = 0, decayLength = 0;
        foreach (var p in ordered)
        {
            if (p.Store is not null) throw new InvalidOperationException($"Parameter {p.Name} is already packed.");
            offsets[p] = length;
            length += (p.Length + Alignment - 1) / Alignment * Alignment;
            if (p.WeightDecay) decayLength = length;
        }
        var weightBlock = device.Allocator.Allocate(Math.Max(1, length));
        var gradBlock = device.Allocator.Allocate(Math.Max(1, length));
        var stream = device.CurrentStream.Native;
        weightBlock.View.MemSetToZero(stream);
        gradBlock.View.MemSetToZero(stream);
        var store = new ParameterStore(device, ordered, weightBlock, gradBlock, decayLength, length, offsets);
        foreach (var p in ordered)
        {
            long offset = offsets[p];
            device.Kernels.Elementwise.Copy(p.View, weightBlock.View.SubView(offset, p.Length));
            p.Dispose(); // returns the parameter's own weight and gradient blocks
            p.Rebind(weightBlock, offset, ownsBlock: false);
            p.Grad!.Rebind(gradBlock, offset, ownsBlock: false);
            p.Store = store;
        }
        return store;
    }

    public void ZeroGradients()
    {
        Gradients.MemSetToZero(device.CurrentStream.Native);
        device.Counters.Kernel();
    }

    public void Dispose()
    {
        device.Allocator.Free(weights);
        device.Allocator.Free(grads);
    }
}
