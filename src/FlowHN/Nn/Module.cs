using FlowHN.Autograd;
using FlowHN.Runtime;

namespace FlowHN.Nn;

/// <summary>
/// A named group of parameters and child modules. Names are dotted paths (e.g. <c>layers.0.mlp.up_proj.weight</c>)
/// and are the keys of checkpoints, so they must not change between versions.
/// </summary>
public abstract class Module : IDisposable
{
    private readonly List<Parameter> parameters = new();
    private readonly List<Module> children = new();

    protected Module(Session device, string name)
    {
        Device = device;
        Name = name;
    }

    public Session Device { get; }
    public string Name { get; }

    /// <summary>Every parameter of this module and its children, in a stable order.</summary>
    public IEnumerable<Parameter> Parameters() => parameters.Concat(children.SelectMany(c => c.Parameters()));

    /// <summary>Real parameters: vocabulary padding rows (allocated, always zero) are not counted.</summary>
    public long ParameterCount => Parameters().Sum(p => p.RealLength);

    protected string Child(string local) => Name.Length == 0 ? local : $"{Name}.{local}";

    protected T Add<T>(T module) where T : Module
    {
        children.Add(module);
        return module;
    }

    /// <summary>
    /// Plans a parameter. Its values are drawn when the model is allocated, from a seed of its own taken from
    /// the model's seeded generator (<paramref name="random"/>) in construction order, so initialisation is
    /// reproducible and the same on any number of threads.
    /// </summary>
    /// <param name="realRows">rows of axis 0 that hold values; the rest are padding (see <see cref="Parameter.RealRows"/>).</param>
    protected Parameter AddParameter(string local, int[] shape, ParameterInit init, bool weightDecay, Random? random = null,
        int? realRows = null)
    {
        var p = Parameter.Plan(Device, Child(local), shape, init, TensorSeed(random), weightDecay, realRows);
        parameters.Add(p);
        return p;
    }

    /// <summary>The seed of the next parameter drawn from the model's generator (0 for deterministic inits).</summary>
    protected static ulong TensorSeed(Random? random) => random is null ? 0 : (ulong)random.NextInt64();

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
