namespace FlowHN.Models.Architectures;

/// <summary><c>transformer</c>: Llama-style, grouped-query attention with RoPE and a SwiGLU MLP in every layer.</summary>
public sealed class TransformerArchitecture : SequentialArchitecture
{
    public override string Name => "transformer";

    protected override IReadOnlyDictionary<string, int> PresetLayers { get; } =
        new Dictionary<string, int> { ["tiny"] = 4, ["small"] = 6, ["135m"] = 5, ["350m"] = 14, ["1b"] = 14 };

    public override bool RopeByDefault => true;

    protected override MixerKind MixerOf(int layer, int layers) => MixerKind.Attention;
}
