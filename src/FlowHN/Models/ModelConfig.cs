using System.Text.Json.Serialization;

namespace FlowHN.Models;

/// <summary>Everything that decides a model's shape; saved as config.json next to every checkpoint.</summary>
public sealed record ModelConfig
{
    public string Arch { get; init; } = "transformer";
    public string Preset { get; init; } = "tiny";
    public int VocabSize { get; init; } = 256;
    public int Dim { get; init; } = 128;
    public int Layers { get; init; } = 4;
    public int Heads { get; init; } = 4;
    public int KvHeads { get; init; } = 2;
    public int MlpHidden { get; init; } = 384;
    /// <summary>Rotary position embedding in attention (on for the Transformer, off in the hybrids).</summary>
    public bool Rope { get; init; } = true;
    public float NormEps { get; init; } = 1e-6f;

    [JsonIgnore] public int HeadDim => Dim / Heads;

    public void Validate()
    {
        if (Dim <= 0 || Layers <= 0 || Heads <= 0 || KvHeads <= 0 || MlpHidden <= 0 || VocabSize <= 0)
            throw new ArgumentException($"Model config has a non-positive size: {this}.");
        if (Dim % Heads != 0) throw new ArgumentException($"Dim {Dim} is not divisible by {Heads} heads.");
        if (Heads % KvHeads != 0) throw new ArgumentException($"{Heads} query heads are not divisible by {KvHeads} KV heads.");
    }
}
