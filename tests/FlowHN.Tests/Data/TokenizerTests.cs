using FlowHN.Data;
using FlowHN.Runtime;

namespace FlowHN.Tests.Data;

public class TokenizerTests
{
    [Fact]
    public void ByteTokenizerRoundTripsUtf8()
    {
        var tokenizer = new ByteTokenizer();
        const string text = "Persuasion, 1818 — “Anne Elliot” ✓\nnaïve";
        var tokens = tokenizer.Encode(text);

        Assert.Equal(System.Text.Encoding.UTF8.GetByteCount(text), tokens.Length);
        Assert.Equal((int)'P', tokens[0]);
        Assert.All(tokens, t => Assert.InRange(t, 1, 255)); // never the end-of-text id 0
        Assert.Equal(text, tokenizer.Decode(tokens));
        Assert.Equal(("bytes", 256, 0), (tokenizer.Name, tokenizer.VocabSize, tokenizer.EndOfText));
    }

    [Fact]
    public void Gpt2KnownIds()
    {
        var tokenizer = new Gpt2Tokenizer();
        // Ids from the original GPT-2 vocabulary: "Hello" = 15496, " world" = 995.
        Assert.Equal([15496, 995], tokenizer.Encode("Hello world"));
        Assert.Equal("Hello world", tokenizer.Decode([15496, 995]));
        Assert.Equal(("gpt2", 50257, 50256), (tokenizer.Name, tokenizer.VocabSize, tokenizer.EndOfText));
    }

    [Fact]
    public void Gpt2RoundTripsASentence()
    {
        var tokenizer = new Gpt2Tokenizer();
        const string text = "It was a truth universally acknowledged, that Anne's \"sister\" —  Mary — wasn't well.\n\n  Chapter 2";
        var tokens = tokenizer.Encode(text);

        Assert.InRange(tokens.Length, 10, text.Length - 1); // BPE merges: fewer tokens than characters
        Assert.All(tokens, t => Assert.InRange(t, 0, 50255));
        Assert.Equal(text, tokenizer.Decode(tokens));
    }

    [Fact]
    public void CreateByNameAndRejectUnknown()
    {
        Assert.IsType<Gpt2Tokenizer>(Tokenizers.Create("gpt2"));
        Assert.IsType<ByteTokenizer>(Tokenizers.Create("bytes"));
        var error = Assert.Throws<UserException>(() => Tokenizers.Create("llama"));
        Assert.Contains("llama", error.Message);
        Assert.Contains("gpt2", error.Message);
        Assert.Contains("bytes", error.Message);
    }
}
