using System.Text.Json.Serialization;

namespace FlowHN.Models;

/// <summary>Everything that decides a model's shape; saved as config.json next to every checkpoint.</summary>
public sealed record ModelConfig
{
    /// <summary>The architecture's name (see <see cref="ArchitectureRegistry"/>); <see cref="Architecture"/> is its entry.</summary>
    public string Arch { get; init; } = "transformer";
    public string Preset { get; init; } = "tiny";
    public int VocabSize { get; init; } = 256;
    public int Dim { get; init; } = 128;
    public int Layers { get; init; } = 4;
    public int Heads { get; init; } = 4;
    public int KvHeads { get; init; } = 2;
    public int MlpHidden { get; init; } = 384;
    /// <summary>
    /// Rotary position embedding in attention. Unless set, it follows the architecture: on for the Transformer,
    /// off in the hybrids, which take position from the SSM as Jamba and the paper do.
    /// </summary>
    public bool Rope { get => rope ?? ArchitectureRegistry.Find(Arch)?.RopeByDefault ?? false; init => rope = value; }
    private readonly bool? rope;
    public float NormEps { get; init; } = 1e-6f;
    /// <summary>Mamba: d_inner = expand * dim.</summary>
    public int MambaExpand { get; init; } = 2;
    public int MambaState { get; init; } = 16;
    public int MambaConvWidth { get; init; } = 4;

    /// <summary>
    /// The mixer of the SSM layers of flowhn, shm, jamba and hymba (<c>--ssm</c>): Mamba-1 (the paper's) or Mamba-2.
    /// Configs saved before the option existed read as Mamba-1.
    /// </summary>
    [JsonConverter(typeof(JsonStringEnumConverter<SsmKind>))]
    public SsmKind Ssm { get; init; } = SsmKind.Mamba1;

    /// <summary>FlowHN: how tokens are split between the branches of every block.</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<SplitStrategy>))]
    public SplitStrategy Split { get; init; } = SplitStrategy.FlopAwareCirculating;
    /// <summary>FlowHN: what a split branch may see (local: its own tokens; prefix: all earlier tokens).</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<SplitContext>))]
    public SplitContext SplitContext { get; init; } = SplitContext.Prefix;
    /// <summary>FlowHN fa/fac: the attention share, from the FLOP model (the default) or fixed, such as 0.59.</summary>
    public AttentionShare SplitRatio { get; init; } = AttentionShare.Flops;

    /// <summary>The entry of <see cref="Arch"/>; an unknown name is a user error listing the valid ones.</summary>
    [JsonIgnore] public Architecture Architecture => ArchitectureRegistry.Get(Arch);

    [JsonIgnore] public Nn.MambaShape Mamba => Nn.MambaShape.For(Dim, MambaExpand, MambaState, MambaConvWidth);

    /// <summary>Mamba-2 layers: head dim and d_state follow the width (see <see cref="Nn.Mamba2Shape.For"/>).</summary>
    [JsonIgnore] public Nn.Mamba2Shape Mamba2 => Nn.Mamba2Shape.For(Dim, MambaExpand, MambaConvWidth);

    [JsonIgnore] public int HeadDim => Dim / Heads;

    public void Validate()
    {
        _ = Architecture; // first: an unknown name stops here with the valid ones (and before ToString would meet it)
        if (Dim <= 0 || Layers <= 0 || Heads <= 0 || KvHeads <= 0 || MlpHidden <= 0 || VocabSize <= 0)
            throw new ArgumentException($"Model config has a non-positive size: {this}.");
        if (Dim % Heads != 0) throw new ArgumentException($"Dim {Dim} is not divisible by {Heads} heads.");
        if (Heads % KvHeads != 0) throw new ArgumentException($"{Heads} query heads are not divisible by {KvHeads} KV heads.");
        if (Ssm != SsmKind.Mamba1 && !Architecture.ChoosesSsm)
            throw new FlowHN.Runtime.UserException($"--ssm {SsmWords.Word(Ssm)} does not apply to --arch {Arch}; it chooses the SSM layers of " +
                                                   string.Join(", ", ArchitectureRegistry.All.Where(a => a.ChoosesSsm).Select(a => a.Name)) + ".");
    }
}
