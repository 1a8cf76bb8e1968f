using FlowHN.Runtime;
using FlowHN.Tensors;
using ILGPU.Runtime;

namespace FlowHN.Autograd;

/// <summary>
/// A trainable tensor with a stable dotted name (the checkpoint key) and a persistent gradient buffer that
/// lives outside any step scope. Whether weight decay applies is decided per parameter.
/// A module's parameters are planned first (shape and initial values, no device memory) and then placed
/// together in one flat weight buffer and one flat gradient buffer (see <see cref="ParameterStore"/>).
/// </summary>
public sealed class Parameter : Tensor
{
    private ParameterInit? init; // from planning until the store allocates the parameter
    private ulong seed;

    private Parameter(Session device, DeviceBlock? block, int[] shape, string name, bool weightDecay)
        : base(device, block, 0, shape, ContiguousStrides(shape), DType.Float32, ownsBlock: block is not null)
    {
        Name = name;
        WeightDecay = weightDecay;
        RequiresGrad = true;
    }

    public string Name { get; }
    public bool WeightDecay { get; }

    /// <summary>The flat buffers this parameter lives in, once allocated (see <see cref="ParameterStore"/>).</summary>
    public ParameterStore? Store { get; private set; }

    /// <summary>A stand-alone parameter with its own weight and gradient blocks, filled with <paramref name="values"/>.</summary>
    public static Parameter Create(Session device, string name, int[] shape, float[] values, bool weightDecay)
    {
        CheckLength(name, shape, values);
        var block = device.Runtime.Allocator.Allocate(Math.Max(1, ShapeLength(shape)));
        var p = new Parameter(device, block, shape, name, weightDecay);
        p.CopyFrom(values);
        var grad = device.Runtime.Allocator.Allocate(Math.Max(1, ShapeLength(shape)));
        p.Grad = new Tensor(device, grad, 0, (int[])shape.Clone(), ContiguousStrides(shape), DType.Float32, ownsBlock: true);
        p.ZeroGrad();
        return p;
    }

    /// <summary>
    /// A parameter without device memory yet: a <see cref="ParameterStore"/> places it, draws its initial values
    /// from <paramref name="init"/> and <paramref name="seed"/> and uploads them.
    /// </summary>
    internal static Parameter Plan(Session device, string name, int[] shape, ParameterInit init, ulong seed, bool weightDecay)
    {
        var p = new Parameter(device, null, shape, name, weightDecay) { init = init, seed = seed };
        p.Grad = new Tensor(device, null, 0, (int[])shape.Clone(), ContiguousStrides(shape), DType.Float32, ownsBlock: false);
        return p;
    }

    /// <summary>Replaces how a planned parameter is initialised (an allocated one is filled at once).</summary>
    internal void Initialise(ParameterInit init, ulong seed)
    {
        if (IsAllocated) CopyFrom(InitialValues(init, seed));
        else (this.init, this.seed) = (init, seed);
    }

    private float[] InitialValues(ParameterInit from, ulong withSeed)
    {
        var values = new float[Length];
        from.Fill(values, withSeed);
        return values;
    }

    /// <summary>Places a planned parameter at <paramref name="offset"/> of the store's buffers and uploads its values.</summary>
    internal void Bind(ParameterStore store, DeviceBlock weights, DeviceBlock grads, long offset)
    {
        if (IsAllocated) throw new InvalidOperationException($"Parameter {Name} already has device memory.");
        Rebind(weights, offset, ownsBlock: false);
        Grad!.Rebind(grads, offset, ownsBlock: false);
        Store = store;
        CopyFrom(InitialValues(init!, seed));
        init = null;
    }

    /// <summary>Zeroes this parameter's gradient (a model zeroes all of its store's gradients in one memset).</summary>
    public void ZeroGrad()
    {
        Grad!.View.MemSetToZero(Device.Runtime.CurrentStream.Native);
        Device.Runtime.Counters.Kernel();
    }

    public override void Dispose()
    {
        Grad?.Dispose();
        base.Dispose();
    }

    private static void CheckLength(string name, int[] shape, float[] values)
    {
        if (ShapeLength(shape) != values.Length)
            throw new ArgumentException($"Parameter {name}: {values.Length} values for shape [{string.Join(", ", shape)}].");
    }
}
