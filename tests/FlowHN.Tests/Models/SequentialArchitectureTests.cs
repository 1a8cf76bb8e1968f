using FlowHN.Nn;
using FlowHN.Autograd;
using FlowHN.Models;
using FlowHN.Tensors;

namespace FlowHN.Tests.Models;

/// <summary>Properties every sequential stack (transformer, mamba, shm, jamba) must have.</summary>
public class SequentialArchitectureTests
{
    private static ModelConfig Tiny(string arch) => new()
    {
        Arch = arch, VocabSize = 11, Dim = 8, Layers = 5, Heads = 2, KvHeads = 1, MlpHidden = 12, MambaState = 4,
        Rope = arch == "transformer",
    };

    [Theory]
    [InlineData("transformer", "default")]
    [InlineData("mamba", "default")]
    [InlineData("mamba2", "default")]
    [InlineData("shm", "default")]
    [InlineData("jamba", "default")]
    [InlineData("hymba", "default")]
    [InlineData("transformer", "gemm")]
    [InlineData("hymba", "gemm")]
    public void LogitsAtOrBeforeAPositionNeverDependOnLaterTokens(string arch, string path)
    {
        var device = TestDevice.Get(path);
        using var model = new SequentialLM(device, Tiny(arch), seed: 2).Allocated();
        const int length = 7;
        int[] a = [3, 1, 4, 1, 5, 9, 2];
        using var scope = device.BeginScope();
        using var noGrad = new NoGradScope(device);
        var reference = model.Forward(TokenIndex.FromHost(device, a, 1, length), 1, length).ToArray();
        for (int t = 0; t < length - 1; t++)
        {
            var b = (int[])a.Clone();
            for (int i = t + 1; i < length; i++) b[i] = (a[i] + 3) % 11;
            var changed = model.Forward(TokenIndex.FromHost(device, b, 1, length), 1, length).ToArray();
            Assert.Equal(reference[..((t + 1) * 11)], changed[..((t + 1) * 11)]);
            Assert.NotEqual(reference[((t + 1) * 11)..], changed[((t + 1) * 11)..]);
        }
    }

    [Theory]
    [InlineData("shm", 2)]
    [InlineData("jamba", 1)]
    public void HybridsHoldTheirAttentionLayers(string arch, int attentionLayers)
    {
        using var model = new SequentialLM(TestDevice.Cpu, Tiny(arch), seed: 1).Allocated();
        Assert.Equal(LanguageModel.CountParameters(Tiny(arch)), model.ParameterCount);
        int found = model.Parameters().Count(p => p.Name.EndsWith("attn.q_proj.weight"));
        Assert.Equal(attentionLayers, found);
    }

    [Fact]
    public void HymbaLayersHoldBothBranchesAndOneOutputProjection()
    {
        using var model = new SequentialLM(TestDevice.Cpu, Tiny("hymba") with { Layers = 2 }, seed: 1).Allocated();
        Assert.Equal(LanguageModel.CountParameters(Tiny("hymba") with { Layers = 2 }), model.ParameterCount);
        var names = model.Parameters().Select(p => p.Name).ToHashSet();
        Assert.Contains("layers.1.hymba.attn.q_proj.weight", names);
        Assert.Contains("layers.1.hymba.mamba.in_proj.weight", names);
        Assert.Contains("layers.1.hymba.out_proj.weight", names);
        Assert.DoesNotContain("layers.1.hymba.attn.o_proj.weight", names);
        Assert.DoesNotContain("layers.1.hymba.mamba.out_proj.weight", names);
        Assert.Equal([8, 8], model.Parameters().Single(p => p.Name == "layers.0.hymba.mamba.out_proj.weight" || p.Name == "layers.0.hymba.out_proj.weight").Shape);
    }
}
