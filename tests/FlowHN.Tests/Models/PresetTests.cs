using FlowHN.Models;

namespace FlowHN.Tests.Models;

public class PresetTests
{
    public static IEnumerable<object[]> Baselines() =>
        from arch in Presets.Architectures.Where(a => a != "flowhn")
        from preset in Presets.Names("flowhn")
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
        var kinds = SequentialLM.LayerKinds(Presets.Get("jamba", "350m", 50257));
        Assert.Equal(12, kinds.Length);
        Assert.Equal([4], kinds.Select((k, i) => (k, i)).Where(x => x.k == MixerKind.Attention).Select(x => x.i));
        var shm = SequentialLM.LayerKinds(Presets.Get("shm", "135m", 50257));
        Assert.Equal([MixerKind.Mamba, MixerKind.Attention, MixerKind.Mamba, MixerKind.Attention], shm);
    }

    [Fact]
    public void UnknownNamesAreUserErrors()
    {
        Assert.Throws<FlowHN.Runtime.UserException>(() => Presets.Get("rwkv", "tiny", 256));
        Assert.Throws<FlowHN.Runtime.UserException>(() => Presets.Get("flowhn", "7b", 256));
    }
}
