namespace FlowHN.Models.Architectures;

/// <summary>
/// <c>jamba</c>: Jamba's 1:7 attention-to-Mamba ratio, attention at index 4 of every 8 layers, without its
/// mixture-of-experts.
/// </summary>
public sealed class JambaArchitecture : SequentialArchitecture
{
    public override string Name => "jamba";

    // Five layers is the fewest that holds the attention layer (index 4 of 8).
    protected override IReadOnlyDictionary<string, int> PresetLayers { get; } =
        new Dictionary<string, int> { ["tiny"] = 5, ["small"] = 5, ["135m"] = 5, ["350m"] = 12, ["1b"] = 12 };

    public override string BreakdownParts => "attention and Mamba layers";

    public override bool ChoosesSsm => true;

    protected override MixerKind MixerOf(int layer, int layers) => layer % 8 == 4 ? MixerKind.Attention : MixerKind.Mamba;
}
