namespace FlowHN.Models.Architectures;

/// <summary>
/// <c>hymba</c>: parallel heads in every layer, attention heads and SSM heads (a Mamba with d_inner = d) on the
/// same tokens, each output RMS-normalised, averaged and projected once (<see cref="Nn.HymbaMixer"/>).
/// </summary>
public sealed class HymbaArchitecture : SequentialArchitecture
{
    public override string Name => "hymba";

    protected override IReadOnlyDictionary<string, int> PresetLayers { get; } =
        new Dictionary<string, int> { ["tiny"] = 4, ["small"] = 5, ["135m"] = 4, ["350m"] = 12, ["1b"] = 12 };

    public override string BreakdownParts => "attention and SSM heads";

    public override bool ChoosesSsm => true;

    protected override MixerKind MixerOf(int layer, int layers) => MixerKind.Hymba;
}
