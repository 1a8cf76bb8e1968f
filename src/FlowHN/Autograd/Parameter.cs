using FlowHN.Runtime;
using FlowHN.Tensors;
using ILGPU.Runtime;

namespace FlowHN.Autograd;

/// <summary>
/// A trainable tensor with a stable dotted name (the checkpoint key) and a persistent gradient buffer that
/// lives outside any step scope. Whether weight decay applies is decided per parameter.
/// </summary>
public sealed class Parameter : Tensor
{
    private Parameter(ComputeDevice device, DeviceBlock block, int[] shape, string name, bool weightDecay)
        : base(device, block, 0, shape, ContiguousStrides(shape), DType.Float32, ownsBlock: true)
    {
        Name = name;
        WeightDecay = weightDecay;
        RequiresGrad = true;
    }

    public string Name { get; }
    public bool WeightDecay { get; }

    /// <summary>The flat buffer this parameter lives in, once packed (see <see cref="ParameterStore"/>).</summary>
    public ParameterStore? Store { get; internal set; }

    /// <summary>Allocates a parameter outside any scope, filled with <paramref name="values"/>.</summary>
    public static Parameter Create(ComputeDevice device, string name, int[] shape, float[] values, bool weightDecay)
    {
        if (ShapeLength(shape) != values.Length)
            throw new ArgumentException($"Parameter {name}: {values.Length} values for shape [{string.Join(", ", shape)}].");
        var block = device.Allocator.Allocate(Math.Max(1, ShapeLength(shape)));
        var p = new Parameter(device, block, shape, name, weightDecay);
        p.CopyFrom(values);
        var grad = device.Allocator.Allocate(Math.Max(1, ShapeLength(shape)));
        p.Grad = new Tensor(device, grad, 0, (int[])shape.Clone(), ContiguousStrides(shape), DType.Float32, ownsBlock: true);
        p.ZeroGrad();
        return p;
    }

    public void ZeroGrad()
    {
        if (Store is not null) throw new InvalidOperationException($"{Name} is packed: zero the store's gradients at once.");
        Grad!.View.MemSetToZero(Device.CurrentStream.Native);
        Device.Counters.Kernel();
    }

    public override void Dispose()
    {
        Grad?.Dispose();
        base.Dispose();
    }
}
