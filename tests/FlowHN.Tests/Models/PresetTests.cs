using FlowHN.Models;

namespace FlowHN.Tests.Models;

public class PresetTests
{
    public static IEnumerable<object[]> Baselines() =>
        from arch in ArchitectureRegistry.Names.Where(a => a != "flowhn")
        from preset in Presets.Names
        select new object[] { arch, preset };

    [Theory]
    [MemberData(nameof(Baselines))]
    public void EveryBaselineIsWithinTenPercentOfFlowHNsParameterCount(string arch, string preset)
    {
        long flowhn = LanguageModel.CountParameters(Presets.Get("flowhn", preset, 50257));
        long baseline = LanguageModel.CountParameters(Presets.Get(arch, preset, 50257));
        double ratio = (double)baseline / flowhn;
        Assert.True(Math.Abs(ratio - 1) <= 0.10, $"{arch}/{preset}: {baseline:N0} vs FlowHN {flowhn:N0} ({ratio:P1})");
    }

    [Fact]
    public void JambaHasOneAttentionLayerInEight()
    {
        var kinds = LayerKinds("jamba", "350m");
        Assert.Equal(12, kinds.Count);
        Assert.Equal([4], kinds.Select((k, i) => (k, i)).Where(x => x.k == MixerKind.Attention).Select(x => x.i));
        var shm = LayerKinds("shm", "135m");
        Assert.Equal([MixerKind.Mamba, MixerKind.Attention, MixerKind.Mamba, MixerKind.Attention], shm);
    }

    private static IReadOnlyList<MixerKind> LayerKinds(string arch, string preset)
    {
        var config = Presets.Get(arch, preset, 50257);
        return config.Architecture.LayerKinds(config);
    }

    [Fact]
    public void RopeFollowsTheArchitectureUnlessSet()
    {
        foreach (var arch in ArchitectureRegistry.Names)
        {
            bool transformer = arch == "transformer";
            Assert.Equal(transformer, new ModelConfig { Arch = arch }.Rope);
            Assert.Equal(transformer, Presets.Get(arch, "tiny", 256).Rope);
            // A config saved without the field (as the PyTorch fixture's are) reads back the same way.
            var read = System.Text.Json.JsonSerializer.Deserialize<ModelConfig>($"{{\"Arch\": \"{arch}\"}}")!;
            Assert.Equal(transformer, read.Rope);
        }
        Assert.False((new ModelConfig { Arch = "transformer" } with { Arch = "flowhn" }).Rope);
        Assert.True(new ModelConfig { Arch = "flowhn", Rope = true }.Rope);
        Assert.False(new ModelConfig { Arch = "transformer", Rope = false }.Rope);
    }

    [Fact]
    public void UnknownNamesAreUserErrors()
    {
        Assert.Throws<FlowHN.Runtime.UserException>(() => Presets.Get("rwkv", "tiny", 256));
        Assert.Throws<FlowHN.Runtime.UserException>(() => Presets.Get("flowhn", "7b", 256));
    }
}
