using FlowHN.Autograd;
using FlowHN.Runtime;
using MathNet.Numerics.Distributions;

namespace FlowHN.Nn;

/// <summary>
/// A named group of parameters and child modules. Names are dotted paths (e.g. <c>layers.0.mlp.up_proj.weight</c>)
/// and are the keys of checkpoints, so they must not change between versions.
/// </summary>
public abstract class Module : IDisposable
{
    private readonly List<Parameter> parameters = new();
    private readonly List<Module> children = new();

    protected Module(ComputeDevice device, string name)
    {
        Device = device;
        Name = name;
    }

    public ComputeDevice Device { get; }
    public string Name { get; }

    /// <summary>Every parameter of this module and its children, in a stable order.</summary>
    public IEnumerable<Parameter> Parameters() => parameters.Concat(children.SelectMany(c => c.Parameters()));

    public long ParameterCount => Parameters().Sum(p => p.Length);

    protected string Child(string local) => Name.Length == 0 ? local : $"{Name}.{local}";

    protected T Add<T>(T module) where T : Module
    {
        children.Add(module);
        return module;
    }

    protected Parameter AddParameter(string local, int[] shape, float[] values, bool weightDecay)
    {
        var p = Parameter.Plan(Device, Child(local), shape, values, weightDecay);
        parameters.Add(p);
        return p;
    }

    /// <summary>N(0, std) values from the model's seeded generator, so initialisation is reproducible.</summary>
    protected static float[] NormalInit(Random random, long count, double std) =>
        Normal.Samples(random, 0, std).Take((int)count).Select(v => (float)v).ToArray();

    /// <summary>The flat buffers of all parameters, once <see cref="AllocateParameters"/> has run.</summary>
    public ParameterStore? Store { get; private set; }

    /// <summary>
    /// Gives every parameter of this module tree its device memory: one flat weight buffer and one flat gradient
    /// buffer, allocated once (see <see cref="ParameterStore"/>). Modules plan their parameters when built and
    /// the root allocates them when the tree is complete; nothing runs before.
    /// </summary>
    public void AllocateParameters() => Store ??= ParameterStore.Allocate(Device, Parameters().ToList());

    public void ZeroGrad()
    {
        if (Store is not null) Store.ZeroGradients();
        else foreach (var p in Parameters()) p.ZeroGrad();
    }

    public virtual void Dispose()
    {
        foreach (var p in parameters) p.Dispose();
        foreach (var c in children) c.Dispose();
        Store?.Dispose();
        Store = null;
        GC.SuppressFinalize(this);
    }
}

public static class ModuleExtensions
{
    /// <summary>Allocates a freshly built module tree's parameters and returns it: <c>new Linear(...).Allocated()</c>.</summary>
    public static T Allocated<T>(this T module) where T : Module
    {
        module.AllocateParameters();
        return module;
    }
}
