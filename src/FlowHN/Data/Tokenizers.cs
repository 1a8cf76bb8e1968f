using FlowHN.Runtime;

namespace FlowHN.Data;

/// <summary>Creates a tokenizer from the name a user types or a shard header stores.</summary>
public static class Tokenizers
{
    public static IReadOnlyList<string> Names { get; } = [Gpt2Tokenizer.TokenizerName, ByteTokenizer.TokenizerName];

    public static ITokenizer Create(string name) => name switch
    {
        Gpt2Tokenizer.TokenizerName => new Gpt2Tokenizer(),
        ByteTokenizer.TokenizerName => new ByteTokenizer(),
        _ => throw new UserException($"Unknown tokenizer '{name}'. Valid tokenizers: {string.Join(", ", Names)}."),
    };
}
