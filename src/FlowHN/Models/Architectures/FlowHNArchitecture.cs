using FlowHN.Autograd;
using FlowHN.Runtime;

namespace FlowHN.Models.Architectures;

/// <summary>
/// <c>flowhn</c>: the paper's parallel hybrid (<see cref="FlowHNLM"/>). Every block runs an attention layer and
/// a Mamba layer side by side on the tokens the split gives each, and fuses them; no positional encoding.
/// </summary>
public sealed class FlowHNArchitecture : Architecture
{
    public override string Name => "flowhn";

    protected override IReadOnlyDictionary<string, int> PresetLayers { get; } =
        new Dictionary<string, int> { ["tiny"] = 2, ["small"] = 3, ["135m"] = 2, ["350m"] = 6, ["1b"] = 6 };

    public override bool SplitsTokens => true;

    public override bool ChoosesSsm => true;

    public override string BreakdownParts => "attention and SSM branches (overlap efficiency and imbalance)";

    public override IReadOnlyList<MixerKind> LayerKinds(ModelConfig c) => Enumerable.Repeat(MixerKind.Parallel, c.Layers).ToArray();

    public override LanguageModel Build(Session device, ModelConfig config, int seed) => new FlowHNLM(device, config, seed);
}
