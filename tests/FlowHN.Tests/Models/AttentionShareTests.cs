using System.Text.Json;
using FlowHN.Cli;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Training;

namespace FlowHN.Tests.Models;

/// <summary>The split ratio's closed type: parsed once, saved as the word typed, and used by value everywhere.</summary>
public class AttentionShareTests
{
    [Theory]
    [InlineData("flops", typeof(AttentionShare.FlopBalanced), "flops")]
    [InlineData("time", typeof(AttentionShare.Measured), "time")]
    [InlineData("0.59", typeof(AttentionShare.Fixed), "0.59")]
    [InlineData("0.590", typeof(AttentionShare.Fixed), "0.59")]
    [InlineData("5e-1", typeof(AttentionShare.Fixed), "0.5")]
    [InlineData(".25", typeof(AttentionShare.Fixed), "0.25")]
    public void ParsesEachKindAndWritesItsWord(string text, Type kind, string word)
    {
        var share = AttentionShare.Parse(text);
        Assert.IsType(kind, share);
        Assert.Equal(word, share.ToString());
        Assert.Equal(share, AttentionShare.Parse(word));
        string json = JsonSerializer.Serialize(share);
        Assert.Equal($"\"{word}\"", json);
        Assert.Equal(share, JsonSerializer.Deserialize<AttentionShare>(json));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("1")]
    [InlineData("1.5")]
    [InlineData("-0.2")]
    [InlineData("NaN")]
    [InlineData("Infinity")]
    [InlineData("")]
    [InlineData("FLOPS")]
    [InlineData("0,5")]
    [InlineData("half")]
    public void RefusesAnythingElseNamingTheValidWords(string text)
    {
        Assert.Null(AttentionShare.TryParse(text));
        var error = Assert.Throws<UserException>(() => AttentionShare.Parse(text));
        Assert.Equal($"Unknown split ratio '{text}'; use flops, time or a number between 0 and 1.", error.Message);
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<AttentionShare>($"\"{text}\""));
    }

    [Fact]
    public void AFixedShareLiesStrictlyBetweenZeroAndOne()
    {
        foreach (double bad in new[] { 0, 1, -0.5, 2, double.NaN, double.PositiveInfinity })
            Assert.Throws<UserException>(() => new AttentionShare.Fixed(bad));
        Assert.Equal(0.3619, AttentionShare.Rounded(0.361912345).Value);
        Assert.Equal(new AttentionShare.Fixed(0.25), new AttentionShare.Fixed(0.25));
        Assert.NotEqual(new AttentionShare.Fixed(0.25), new AttentionShare.Fixed(0.26));
        Assert.NotEqual(AttentionShare.Flops, AttentionShare.Time);
    }

    [Fact]
    public void ConfigJsonOfEarlierRunsReadsTheSame()
    {
        // config.json has always held the ratio as the word typed; older runs load unchanged.
        foreach (var (word, expected) in new (string, AttentionShare)[]
                 { ("flops", AttentionShare.Flops), ("0.3", new AttentionShare.Fixed(0.3)), ("0.5213", new AttentionShare.Fixed(0.5213)) })
        {
            var config = JsonSerializer.Deserialize<ModelConfig>($"{{\"Arch\": \"flowhn\", \"SplitRatio\": \"{word}\"}}")!;
            Assert.Equal(expected, config.SplitRatio);
            Assert.Contains($"\"SplitRatio\":\"{word}\"", JsonSerializer.Serialize(config));
        }
        Assert.Equal(AttentionShare.Flops, JsonSerializer.Deserialize<ModelConfig>("{\"Arch\": \"flowhn\"}")!.SplitRatio);
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<ModelConfig>("{\"Arch\": \"flowhn\", \"SplitRatio\": 0.5}"));
    }

    [Fact]
    public void EachKindSplitsAsItSays()
    {
        var config = Presets.Get("flowhn", "tiny", 256) with { Split = SplitStrategy.FlopAware };
        var byFlops = FlowHNLM.Balance(config, 64);
        Assert.Equal(SplitRatio.Solve(ParallelCosts(config), config.SplitContext, 64).AttentionTokens, byFlops.AttentionTokens);
        Assert.Equal(16, FlowHNLM.Balance(config with { SplitRatio = new AttentionShare.Fixed(0.25) }, 64).AttentionTokens);
        // A measured share must be measured on a device first: the model cannot guess it.
        Assert.Throws<ArgumentException>(() => FlowHNLM.Balance(config with { SplitRatio = AttentionShare.Time }, 64));
        // Resolving leaves every other config as it is, measuring nothing.
        var (same, measured) = SplitTimer.Resolve(TestDevice.Cpu, config, batch: 1, seqLen: 64);
        Assert.Same(config, same);
        Assert.Empty(measured);
        var transformer = Presets.Get("transformer", "tiny", 256) with { SplitRatio = AttentionShare.Time };
        Assert.Same(transformer, SplitTimer.Resolve(TestDevice.Cpu, transformer, batch: 1, seqLen: 64).Config);
    }

    private static BranchCosts ParallelCosts(ModelConfig c) =>
        BranchCosts.FromConfig(c, FlopModel.MambaLayer(c.Mamba) + FlopModel.SwiGluMlp(c.Dim, c.MlpHidden));

    [Theory]
    [InlineData("1.5")]
    [InlineData("fast")]
    [InlineData("0")]
    public void TheCommandLineRefusesABadRatioWithOneLine(string ratio)
    {
        using var run = new TempFolder();
        var error = new StringWriter();
        int code = FlowHnCli.Run(["train", "--device", "cpu", "--data", "/no/data/needed/first", "--out", run.Path, "--split-ratio", ratio],
            TextWriter.Null, error);
        Assert.Equal(2, code);
        Assert.Equal($"error: --split-ratio must be flops, time or a number between 0 and 1 (got {ratio}).", error.ToString().Trim());
    }

    [Fact]
    public void ResumingComparesTheRatioByValue()
    {
        using var cache = new TempFolder();
        using var run = new TempFolder();
        string[] Train(params string[] more) =>
        [
            "train", "--device", "cpu", "--arch", "flowhn", "--preset", "tiny", "--data", RepoPaths.Sample, "--cache", cache.Path,
            "--out", run.Path, "--steps", "1", "--batch", "1", "--seq", "16", "--eval-batches", "1", .. more,
        ];
        (int Code, string Error) Run(string[] args)
        {
            var error = new StringWriter();
            return (FlowHnCli.Run(args, TextWriter.Null, error), error.ToString());
        }

        var first = Run(Train("--split", "fa", "--split-ratio", "0.5"));
        Assert.True(first.Code == 0, first.Error);
        Assert.Equal(new AttentionShare.Fixed(0.5), Checkpoint.LoadConfig(Checkpoint.PathIn(run.Path)).SplitRatio);
        var sameValue = Run(Train("--resume", "--split-ratio", "0.50"));
        Assert.True(sameValue.Code == 0, sameValue.Error);
        var other = Run(Train("--resume", "--split-ratio", "0.4"));
        Assert.Equal(2, other.Code);
        Assert.Contains("--split-ratio 0.4 (the run uses 0.5)", other.Error);
    }
}
