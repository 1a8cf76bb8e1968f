using FlowHN.Runtime;

namespace FlowHN.Models;

/// <summary>
/// Named model sizes. A preset fixes the width (dim, heads, MLP) for every architecture; the layer count of each
/// baseline is chosen so its parameter count (GPT-2 vocabulary) is within 10% of FlowHN's at that preset, as the
/// paper compares them (a test checks it). For FlowHN, Layers counts parallel blocks. The vocabulary comes from
/// the data's tokenizer.
/// </summary>
public static class Presets
{
    private sealed record Width(int Dim, int Heads, int KvHeads, int MlpHidden);

    private static readonly Dictionary<string, Width> Widths = new()
    {
        ["tiny"] = new(128, 4, 2, 384),       // trains in about two minutes on a 2-core CPU (byte tokenizer)
        ["small"] = new(512, 8, 2, 1536),     // a quick GPU sanity size
        ["135m"] = new(768, 32, 8, 2048),     // the paper's sizes
        ["350m"] = new(1024, 32, 8, 4096),
        ["1b"] = new(2048, 32, 8, 8192),
    };

    private static readonly Dictionary<string, Dictionary<string, int>> Layers = new()
    {
        ["flowhn"] = new() { ["tiny"] = 2, ["small"] = 3, ["135m"] = 2, ["350m"] = 6, ["1b"] = 6 },
        ["transformer"] = new() { ["tiny"] = 4, ["small"] = 6, ["135m"] = 5, ["350m"] = 14, ["1b"] = 14 },
        ["mamba"] = new() { ["tiny"] = 3, ["small"] = 4, ["135m"] = 4, ["350m"] = 11, ["1b"] = 11 },
        ["shm"] = new() { ["tiny"] = 4, ["small"] = 5, ["135m"] = 4, ["350m"] = 13, ["1b"] = 13 },
        // Five layers is the fewest that holds Jamba's attention layer (index 4 of 8).
        ["jamba"] = new() { ["tiny"] = 5, ["small"] = 5, ["135m"] = 5, ["350m"] = 12, ["1b"] = 12 },
        ["hymba"] = new() { ["tiny"] = 4, ["small"] = 5, ["135m"] = 4, ["350m"] = 12, ["1b"] = 12 },
    };

    public static IReadOnlyList<string> Architectures => Layers.Keys.ToList();

    public static IReadOnlyList<string> Names(string arch) => Table(arch).Keys.ToList();

    public static ModelConfig Get(string arch, string preset, int vocabSize)
    {
        var table = Table(arch);
        if (!table.TryGetValue(preset, out int layers))
            throw new UserException($"Unknown preset '{preset}' for --arch {arch}. Presets: {string.Join(", ", table.Keys)}.");
        var w = Widths[preset];
        return new ModelConfig
        {
            Arch = arch, Preset = preset, VocabSize = vocabSize, Dim = w.Dim, Heads = w.Heads, KvHeads = w.KvHeads,
            MlpHidden = w.MlpHidden, Layers = layers,
        };
    }

    private static Dictionary<string, int> Table(string arch) =>
        Layers.TryGetValue(arch, out var table)
            ? table
            : throw new UserException($"Unknown architecture '{arch}'. Architectures: {string.Join(", ", Architectures)}.");
}
