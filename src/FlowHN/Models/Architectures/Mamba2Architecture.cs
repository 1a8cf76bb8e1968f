namespace FlowHN.Models.Architectures;

/// <summary><c>mamba2</c>: Mamba-2 (SSD) layers, each followed by a SwiGLU MLP, as the paper's Mamba-2 baseline.</summary>
public sealed class Mamba2Architecture : SequentialArchitecture
{
    public override string Name => "mamba2";

    protected override IReadOnlyDictionary<string, int> PresetLayers { get; } =
        new Dictionary<string, int> { ["tiny"] = 3, ["small"] = 5, ["135m"] = 4, ["350m"] = 11, ["1b"] = 11 };

    protected override MixerKind MixerOf(int layer, int layers) => MixerKind.Mamba2;
}
