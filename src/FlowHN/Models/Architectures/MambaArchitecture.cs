namespace FlowHN.Models.Architectures;

/// <summary><c>mamba</c>: Mamba-1 layers with RMSNorm on dt, B and C (as in Jamba), each followed by a SwiGLU MLP.</summary>
public sealed class MambaArchitecture : SequentialArchitecture
{
    public override string Name => "mamba";

    protected override IReadOnlyDictionary<string, int> PresetLayers { get; } =
        new Dictionary<string, int> { ["tiny"] = 3, ["small"] = 4, ["135m"] = 4, ["350m"] = 11, ["1b"] = 11 };

    protected override MixerKind MixerOf(int layer, int layers) => MixerKind.Mamba;
}
