using FlowHN.Autograd;
using FlowHN.Runtime;

namespace FlowHN.Models;

/// <summary>
/// One architecture that <c>--arch</c> can name: what it is, how to build it, what its layers are, its layer count
/// at each preset, and the options that depend on it. Everything that differs between architectures asks the
/// entry (found through <see cref="ArchitectureRegistry"/> or <see cref="ModelConfig.Architecture"/>), never the
/// name. A new architecture is a new subclass in Models/Architectures/ plus one line in the registry; its parameter
/// count, FLOPs and memory are measured from the model it builds (<see cref="ModelMeasure"/>), never written down.
/// </summary>
public abstract class Architecture
{
    /// <summary>The <c>--arch</c> word, saved in config.json.</summary>
    public abstract string Name { get; }

    /// <summary>
    /// Layers (FlowHN: parallel blocks) at each preset the architecture has. A baseline's count puts its parameters
    /// within 10% of FlowHN's at the same preset (a test checks it). An architecture may leave a preset out.
    /// </summary>
    protected abstract IReadOnlyDictionary<string, int> PresetLayers { get; }

    /// <summary>Rotary position embedding in attention unless a config says otherwise (hybrids take position from the SSM).</summary>
    public virtual bool RopeByDefault => false;

    /// <summary>Whether FlowHN's token split options (<c>--split</c>, <c>--split-context</c>, <c>--split-ratio</c>) apply.</summary>
    public virtual bool SplitsTokens => false;

    /// <summary>Whether <c>--ssm mamba1|mamba2</c> chooses the mixer of its SSM layers (<see cref="ModelConfig.Ssm"/>).</summary>
    public virtual bool ChoosesSsm => false;

    /// <summary>What <c>bench --breakdown</c> times apart (forward and backward), or null when there is nothing to split.</summary>
    public virtual string? BreakdownParts => null;

    /// <summary>What mixes the tokens of each layer (FlowHN: each block is <see cref="MixerKind.Parallel"/>).</summary>
    public abstract IReadOnlyList<MixerKind> LayerKinds(ModelConfig c);

    /// <summary>The model's modules, parameters planned but not allocated (<see cref="LanguageModel.Create"/> allocates them).</summary>
    public abstract LanguageModel Build(Session device, ModelConfig config, int seed);

    /// <summary>Whether a layer runs the selective scan (its CUDA kernel takes local memory from the driver).</summary>
    public bool UsesSelectiveScan(ModelConfig c) => LayerKinds(c).Any(kind => kind is not (MixerKind.Attention or MixerKind.Mamba2));

    /// <summary>The presets this architecture has, smallest first.</summary>
    public IReadOnlyList<Preset> Presets => Models.Presets.All.Where(p => PresetLayers.ContainsKey(p.Name)).ToList();

    /// <summary>The config of a preset at a vocabulary size; an unknown preset is a user error naming the valid ones.</summary>
    public ModelConfig Config(string preset, int vocabSize)
    {
        if (!PresetLayers.TryGetValue(preset, out int layers))
            throw new UserException($"Unknown preset '{preset}' for --arch {Name}; use one of: {string.Join(", ", Presets.Select(p => p.Name))}.");
        var p = Models.Presets.Find(preset);
        return new ModelConfig
        {
            Arch = Name, Preset = preset, VocabSize = vocabSize, Dim = p.Dim, Heads = p.Heads, KvHeads = p.KvHeads,
            MlpHidden = p.MlpHidden, Layers = layers,
        };
    }

    public override string ToString() => Name;
}

/// <summary>
/// A stack of pre-norm decoder layers (<see cref="SequentialLM"/>) whose mixers follow a pattern by layer index:
/// an entry only says which mixer each layer has.
/// </summary>
public abstract class SequentialArchitecture : Architecture
{
    /// <summary>The mixer of layer <paramref name="layer"/> of <paramref name="layers"/>.</summary>
    protected abstract MixerKind MixerOf(int layer, int layers);

    /// <summary>Layers by <see cref="MixerOf"/>; where the entry <see cref="Architecture.ChoosesSsm"/>, its Mamba layers follow <c>--ssm</c>.</summary>
    public override IReadOnlyList<MixerKind> LayerKinds(ModelConfig c) =>
        Enumerable.Range(0, c.Layers)
            .Select(i => MixerOf(i, c.Layers) is MixerKind.Mamba && ChoosesSsm ? SsmWords.MixerOf(c) : MixerOf(i, c.Layers)).ToArray();

    public override LanguageModel Build(Session device, ModelConfig config, int seed) => new SequentialLM(device, config, seed);
}
