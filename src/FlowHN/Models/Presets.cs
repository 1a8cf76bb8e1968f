using FlowHN.Runtime;

namespace FlowHN.Models;

/// <summary>Named model sizes. The vocabulary comes from the data's tokenizer, not the preset.</summary>
public static class Presets
{
    private static readonly Dictionary<string, ModelConfig> Transformer = new()
    {
        // Trains in about two minutes on a 2-core CPU (byte tokenizer, sequence 128).
        ["tiny"] = new ModelConfig { Preset = "tiny", Dim = 128, Layers = 4, Heads = 4, KvHeads = 2, MlpHidden = 384 },
        // A quick GPU sanity size.
        ["small"] = new ModelConfig { Preset = "small", Dim = 512, Layers = 6, Heads = 8, KvHeads = 2, MlpHidden = 1536 },
    };

    public static IReadOnlyList<string> Names(string arch) => Table(arch).Keys.ToList();

    public static IReadOnlyList<string> Architectures => ["transformer"];

    public static ModelConfig Get(string arch, string preset, int vocabSize)
    {
        var table = Table(arch);
        if (!table.TryGetValue(preset, out var config))
            throw new UserException($"Unknown preset '{preset}' for --arch {arch}. Presets: {string.Join(", ", table.Keys)}.");
        return config with { Arch = arch, VocabSize = vocabSize };
    }

    private static Dictionary<string, ModelConfig> Table(string arch) => arch switch
    {
        "transformer" => Transformer,
        _ => throw new UserException($"Unknown architecture '{arch}'. Architectures: {string.Join(", ", Architectures)}."),
    };
}
