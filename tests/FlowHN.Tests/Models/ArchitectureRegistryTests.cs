using System.Text.Json;
using System.Text.RegularExpressions;
using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Training;

namespace FlowHN.Tests.Models;

public class ArchitectureRegistryTests
{
    public static IEnumerable<object[]> Names() => ArchitectureRegistry.Names.Select(n => new object[] { n });

    [Theory]
    [MemberData(nameof(Names))]
    public void EveryNameRoundTripsThroughTheRegistryAndConfigJson(string name)
    {
        var architecture = ArchitectureRegistry.Get(name);
        Assert.Equal(name, architecture.Name);
        Assert.Same(architecture, ArchitectureRegistry.Find(name));
        var config = architecture.Config("tiny", 256);
        Assert.Same(architecture, config.Architecture);
        string json = JsonSerializer.Serialize(config);
        var read = JsonSerializer.Deserialize<ModelConfig>(json)!;
        Assert.Equal(json, JsonSerializer.Serialize(read));
        Assert.Same(architecture, read.Architecture);
    }

    [Fact]
    public void NamesAreDistinctAndUnknownOnesNameEveryValidOne()
    {
        Assert.Equal(ArchitectureRegistry.Names.Count, ArchitectureRegistry.Names.Distinct().Count());
        Assert.Null(ArchitectureRegistry.Find("rwkv"));
        Assert.Null(ArchitectureRegistry.Find("FlowHN")); // names are exact, as config.json stores them
        var error = Assert.Throws<UserException>(() => ArchitectureRegistry.Get("rwkv"));
        Assert.Equal("Unknown architecture 'rwkv'; use one of: " + string.Join(", ", ArchitectureRegistry.Names) + ".", error.Message);
        Assert.Throws<UserException>(() => new ModelConfig { Arch = "rwkv" }.Validate());
        var preset = Assert.Throws<UserException>(() => Presets.Get("flowhn", "7b", 256));
        Assert.Contains("tiny, small, 135m, 350m, 1b", preset.Message);
    }

    [Fact]
    public void EveryArchitectureClassIsInTheRegistry()
    {
        // A new architecture whose registry line was forgotten fails here.
        var classes = typeof(Architecture).Assembly.GetTypes()
            .Where(t => typeof(Architecture).IsAssignableFrom(t) && !t.IsAbstract).OrderBy(t => t.Name).ToList();
        Assert.Equal(classes, ArchitectureRegistry.All.Select(a => a.GetType()).OrderBy(t => t.Name).ToList());
    }

    public static IEnumerable<object[]> ArchitecturePresets() =>
        from a in ArchitectureRegistry.All
        from p in a.Presets
        select new object[] { a.Name, p.Name };

    [Theory]
    [MemberData(nameof(ArchitecturePresets))]
    public void EveryPresetBuildsForEveryArchitecture(string arch, string preset)
    {
        // Built, not allocated: modules only plan their parameters, so even 1b costs no memory here.
        var architecture = ArchitectureRegistry.Get(arch);
        var config = Presets.Get(arch, preset, 50257);
        var width = Presets.Find(preset);
        Assert.Equal((width.Dim, width.Heads, width.KvHeads, width.MlpHidden), (config.Dim, config.Heads, config.KvHeads, config.MlpHidden));
        using var model = architecture.Build(TestDevice.Cpu, config, seed: 1);
        Assert.Null(model.Store);
        Assert.Equal(LanguageModel.CountParameters(config), model.ParameterCount);
        Assert.Equal(config.Layers, architecture.LayerKinds(config).Count);
        Assert.True(LanguageModel.TrainingFlopsPerToken(config, width.BenchSeqLen) > 0);
        Assert.True(MemoryMeasure.Estimate(config, width.BenchBatch, width.BenchSeqLen, MemoryMeasure.Cuda).ActivationBytesPerToken > 0);
    }

    [Fact]
    public void PresetDefaultsNameARealTokenizerAndItsVocabulary()
    {
        foreach (var preset in Presets.All)
        {
            Assert.Equal(Tokenizers.Create(preset.Tokenizer).VocabSize, preset.BenchVocab);
            Assert.True(preset.BenchBatch > 0 && preset.BenchSeqLen >= 2, preset.Name);
        }
        Assert.Equal("bytes", Presets.Find("tiny").Tokenizer);
        Assert.Equal("gpt2", Presets.Find("135m").Tokenizer);
    }

    [Fact]
    public void WhatEachEntrySaysMatchesItsLayers()
    {
        foreach (var a in ArchitectureRegistry.All)
        {
            var config = a.Config("135m", 50257);
            var kinds = a.LayerKinds(config).Distinct().ToList();
            // --breakdown splits what runs side by side (parallel blocks, Hymba's heads) or alternates (hybrid stacks).
            bool mixes = kinds.Count > 1 || kinds.Contains(MixerKind.Parallel) || kinds.Contains(MixerKind.Hymba);
            Assert.True(mixes == a.BreakdownParts is not null, a.Name);
            Assert.Equal(kinds.Contains(MixerKind.Parallel), a.SplitsTokens);
            Assert.Equal(kinds.SequenceEqual([MixerKind.Attention]), a.RopeByDefault);
            Assert.Equal(a.RopeByDefault, config.Rope);
        }
    }

    [Fact]
    public void TheReadmeModelsTableListsEveryArchitecture()
    {
        string readme = File.ReadAllText(Path.Combine(RepoPaths.Root, "README.md"));
        string models = Section(readme, "## Models");
        var rows = Regex.Matches(models, @"^\| `([a-z][a-z0-9_-]*)` \|", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(ArchitectureRegistry.Names, rows);
        Assert.Contains("--arch " + string.Join(@"\|", ArchitectureRegistry.Names) + "`", readme);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void TheReadmeDocumentsEveryWeightName(string arch)
    {
        // Every segment of every weight name (layer indices aside) and every name's last two segments
        // (e.g. `dt_proj.bias`) appear in the README's weight-name section: a new weight cannot go undocumented.
        string weights = Section(File.ReadAllText(Path.Combine(RepoPaths.Root, "README.md")), "### Weight names and layouts");
        var config = Presets.Get(arch, "tiny", 256);
        using var model = config.Architecture.Build(TestDevice.Cpu, config, seed: 1);
        foreach (string name in model.Parameters().Select(p => p.Name))
        {
            var segments = name.Split('.').Where(s => !s.All(char.IsAsciiDigit)).ToList();
            foreach (string segment in segments)
                Assert.True(Regex.IsMatch(weights, $@"\b{Regex.Escape(segment)}\b"), $"{arch}: '{segment}' of {name} is not in the README");
            Assert.Contains($"{segments[^2]}.{segments[^1]}", weights);
        }
    }

    private static string Section(string markdown, string heading)
    {
        int start = markdown.IndexOf("\n" + heading + "\n", StringComparison.Ordinal);
        Assert.True(start >= 0, $"README has no '{heading}' section");
        int level = heading.IndexOf(' ');
        var next = Regex.Match(markdown[(start + heading.Length + 2)..], $@"^#{{1,{level}}} ", RegexOptions.Multiline);
        return next.Success ? markdown.Substring(start, heading.Length + 2 + next.Index) : markdown[start..];
    }
}
