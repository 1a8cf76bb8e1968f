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

    private Parameter(Session device, DeviceBlock? block, int[] shape, string name, bool weightDecay, int? realRows = null)
        : base(device, block, 0, shape, ContiguousStrides(shape), DType.Float32, ownsBlock: block is not null)
    {
        Name = name;
        WeightDecay = weightDecay;
        RequiresGrad = true;
        int rows = shape.Length == 0 ? 1 : shape[0];
        RealRows = realRows ?? rows;
        if (RealRows < 0 || RealRows > rows)
            throw new ArgumentException($"Parameter {name}: {RealRows} real rows of shape [{string.Join(", ", shape)}].");
    }

    public string Name { get; }
    public bool WeightDecay { get; }

    /// <summary>
    /// Rows of axis 0 that hold the parameter's values. Rows past them are padding (a vocabulary rounded up, see
    /// Nn.VocabularyPadding): zero from the start, never read by the model's forward, so never given a gradient,
    /// and left out of checkpoints and parameter counts. Equal to Dim(0) for every other parameter.
    /// </summary>
    public int RealRows { get; }

    /// <summary>Elements in the real rows (what checkpoints hold and parameter counts count).</summary>
    public long RealLength => Rank == 0 || RealRows == Shape[0] ? Length : Length / Shape[0] * RealRows;

    /// <summary>The real rows of this parameter: itself unless padded, else a contiguous view of its first rows.</summary>
    public Tensor Real => RealRowsOf(this);

    /// <summary>The real rows of a tensor shaped like this parameter (its gradient or an optimizer moment).</summary>
    public Tensor RealRowsOf(Tensor t)
    {
        if (!t.Shape.SequenceEqual(Shape)) throw new ArgumentException($"Parameter {Name}: tensor {t.ShapeString} is not shaped like it.");
        return RealRows == Dim(0) ? t : t.SliceView(0, RealRows);
    }

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
    internal static Parameter Plan(Session device, string name, int[] shape, ParameterInit init, ulong seed, bool weightDecay,
        int? realRows = null)
    {
        var p = new Parameter(device, null, shape, name, weightDecay, realRows) { init = init, seed = seed };
        p.Grad = new Tensor(device, null, 0, (int[])shape.Clone(), ContiguousStrides(shape), DType.Float32, ownsBlock: false);
        return p;
    }

    /// <summary>Replaces how a planned parameter is initialised (an allocated one is filled at once).</summary>
    internal void Initialise(ParameterInit init, ulong seed)
    {
        if (IsAllocated) CopyFrom(InitialValues(init, seed));
        else (this.init, this.seed) = (init, seed);
    }

    /// <summary>The real rows drawn from the init (the same values as an unpadded parameter's), the padding zero.</summary>
    private float[] InitialValues(ParameterInit from, ulong withSeed)
    {
        var real = new float[RealLength];
        from.Fill(real, withSeed);
        if (real.LongLength == Length) return real;
        var values = new float[Length];
        real.CopyTo(values, 0);
        return values;
    }

    /// <summary>Places a planned parameter at <paramref name="offset"/> of the store's buffers and uploads its values.</summary>
    internal void Bind(ParameterStore store, DeviceBlock weights, DeviceBlock grads, long offset)
    {
        if (IsAllocated) throw new InvalidOperationException($"Parameter {Name} already has device memory.");
        Rebind(weights, offset, ownsBlock: false);
        Grad!.Rebind(grads, offset, ownsBlock: false);
        Store = store;
        // A shape-only device draws no values: at 1B parameters that alone would take seconds and gigabytes.
        if (!Device.Runtime.IsMeta) CopyFrom(InitialValues(init!, seed));
        init = null;
    }

    /// <summary>Zeroes this parameter's gradient (a model zeroes all of its store's gradients in one memset).</summary>
    public void ZeroGrad()
    {
        if (!Device.Runtime.IsMeta) Grad!.View.MemSetToZero(Device.Runtime.CurrentStream.Native);
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
