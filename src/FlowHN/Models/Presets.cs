using FlowHN.Runtime;

namespace FlowHN.Models;

/// <summary>
/// A named model size: the width every architecture shares at it (each architecture chooses its layer count,
/// see <see cref="Architecture"/>) and the defaults that go with it: the tokenizer <c>train</c> picks with
/// <c>--tokenizer auto</c> and the shapes <c>bench</c> measures unless told otherwise.
/// </summary>
/// <param name="Tokenizer">The tokenizer's name (bytes or gpt2); <paramref name="BenchVocab"/> is its vocabulary.</param>
public sealed record Preset(string Name, int Dim, int Heads, int KvHeads, int MlpHidden, string Tokenizer, int BenchBatch, int BenchSeqLen,
    int BenchVocab);

/// <summary>
/// The presets, smallest first. A baseline's layer count at a preset is chosen so its parameter count (GPT-2
/// vocabulary) is within 10% of FlowHN's, as the paper compares them (a test checks it). For FlowHN, layers count
/// parallel blocks. The vocabulary comes from the data's tokenizer.
/// </summary>
public static class Presets
{
    public static IReadOnlyList<Preset> All { get; } =
    [
        // Trains in about two minutes on a 2-core CPU.
        new("tiny", Dim: 128, Heads: 4, KvHeads: 2, MlpHidden: 384, Tokenizer: "bytes", BenchBatch: 2, BenchSeqLen: 64, BenchVocab: 256),
        // A quick GPU sanity size.
        new("small", Dim: 512, Heads: 8, KvHeads: 2, MlpHidden: 1536, Tokenizer: "gpt2", BenchBatch: 8, BenchSeqLen: 1024, BenchVocab: 50257),
        // The paper's sizes.
        new("135m", Dim: 768, Heads: 32, KvHeads: 8, MlpHidden: 2048, Tokenizer: "gpt2", BenchBatch: 8, BenchSeqLen: 1024, BenchVocab: 50257),
        new("350m", Dim: 1024, Heads: 32, KvHeads: 8, MlpHidden: 4096, Tokenizer: "gpt2", BenchBatch: 8, BenchSeqLen: 1024, BenchVocab: 50257),
        new("1b", Dim: 2048, Heads: 32, KvHeads: 8, MlpHidden: 8192, Tokenizer: "gpt2", BenchBatch: 8, BenchSeqLen: 1024, BenchVocab: 50257),
    ];

    public static IReadOnlyList<string> Names { get; } = All.Select(p => p.Name).ToList();

    /// <summary>The preset called <paramref name="name"/>; any other name is a user error listing the valid ones.</summary>
    public static Preset Find(string name) =>
        All.FirstOrDefault(p => p.Name == name) ?? throw new UserException($"Unknown preset '{name}'; use one of: {string.Join(", ", Names)}.");

    /// <summary>The config of an architecture at a preset and vocabulary size (both names checked, as user errors).</summary>
    public static ModelConfig Get(string arch, string preset, int vocabSize) => ArchitectureRegistry.Get(arch).Config(preset, vocabSize);
}
