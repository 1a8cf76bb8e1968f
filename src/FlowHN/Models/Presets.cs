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

    private static readonly Dictionary<string, ModelConfig> Mamba = new()
    {
        ["tiny"] = new ModelConfig { Preset = "tiny", Dim = 128, Layers = 4, MlpHidden = 384, Rope = false },
        ["small"] = new ModelConfig { Preset = "small", Dim = 512, Layers = 6, MlpHidden = 1536, Rope = false },
    };

    private static readonly Dictionary<string, ModelConfig> FlowHN = new()
    {
        // Layers counts parallel blocks (each an attention layer and a Mamba layer side by side).
        ["tiny"] = new ModelConfig { Preset = "tiny", Dim = 128, Layers = 2, Heads = 4, KvHeads = 2, MlpHidden = 384, Rope = false },
        ["small"] = new ModelConfig { Preset = "small", Dim = 512, Layers = 3, Heads = 8, KvHeads = 2, MlpHidden = 1536, Rope = false },
        ["135m"] = new ModelConfig { Preset = "135m", Dim = 768, Layers = 2, Heads = 32, KvHeads = 8, MlpHidden = 2048, Rope = false },
        ["350m"] = new ModelConfig { Preset = "350m", Dim = 1024, Layers = 6, Heads = 32, KvHeads = 8, MlpHidden = 4096, Rope = false },
        ["1b"] = new ModelConfig { Preset = "1b", Dim = 2048, Layers = 6, Heads = 32, KvHeads = 8, MlpHidden = 8192, Rope = false },
    };

    public static IReadOnlyList<string> Names(string arch) => Table(arch).Keys.ToList();

    public static IReadOnlyList<string> Architectures => ["transformer", "mamba", "flowhn"];

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
        "mamba" => Mamba,
        "flowhn" => FlowHN,
        _ => throw new UserException($"Unknown architecture '{arch}'. Architectures: {string.Join(", ", Architectures)}."),
    };
}
