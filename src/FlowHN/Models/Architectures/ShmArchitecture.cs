namespace FlowHN.Models.Architectures;

/// <summary><c>shm</c>: the sequential hybrid, Mamba and attention layers alternating 1:1, starting with Mamba (as in SHM).</summary>
public sealed class ShmArchitecture : SequentialArchitecture
{
    public override string Name => "shm";

    protected override IReadOnlyDictionary<string, int> PresetLayers { get; } =
        new Dictionary<string, int> { ["tiny"] = 4, ["small"] = 5, ["135m"] = 4, ["350m"] = 13, ["1b"] = 13 };

    public override string BreakdownParts => "attention and Mamba layers";

    public override bool ChoosesSsm => true;

    protected override MixerKind MixerOf(int layer, int layers) => layer % 2 == 1 ? MixerKind.Attention : MixerKind.Mamba;
}
