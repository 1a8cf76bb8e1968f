using FlowHN.Nn;
using FlowHN.Autograd;
using FlowHN.Models;
using FlowHN.Tensors;

namespace FlowHN.Tests.Models;

public class TransformerTests
{
    private static readonly ModelConfig Tiny = new()
    {
        Arch = "transformer", VocabSize = 11, Dim = 8, Layers = 2, Heads = 2, KvHeads = 1, MlpHidden = 12,
    };

    [Fact]
    public void ParameterCountMatchesTheFormulaAndNamesAreStable()
    {
        using var model = new SequentialLM(TestDevice.Cpu, Tiny, seed: 1).Allocated();
        Assert.Equal(LanguageModel.CountParameters(Tiny), model.ParameterCount);
        var names = model.Parameters().Select(p => p.Name).ToList();
        Assert.Equal(names.Count, names.Distinct().Count());
        Assert.Contains("embed.weight", names);
        Assert.Contains("layers.1.attn.k_proj.weight", names);
        Assert.Contains("layers.0.mlp.down_proj.weight", names);
        Assert.Contains("final_norm.weight", names);
        Assert.Equal("lm_head.weight", names[^1]);
    }

    [Fact]
    public void GradientsOfEveryKindOfParameterPassAFiniteDifferenceCheck()
    {
        var device = TestDevice.Cpu;
        using var model = new SequentialLM(device, Tiny, seed: 2).Allocated();
        using var ids = TokenIndex.FromHost(device, [1, 5, 2, 9, 0, 3, 3, 10, 7, 4], 2, 5);
        // Weights of order 1 instead of the 0.02 init: with tiny weights attention is nearly uniform and many
        // gradients are too small for float32 finite differences to resolve.
        int seed = 10;
        foreach (var p in model.Parameters())
            p.CopyFrom(Reference.Random((int)p.Length, seed++, 0.5).Select(v => p.Name.EndsWith("norm.weight") ? 1 + v : v).ToArray());
        var byName = model.Parameters().ToDictionary(p => p.Name);
        var checkedParameters = new[]
        {
            byName["embed.weight"], byName["layers.0.attn.q_proj.weight"], byName["layers.1.attn.v_proj.weight"],
            byName["layers.0.attn_norm.weight"], byName["layers.1.mlp.gate_proj.weight"], byName["lm_head.weight"],
        };
        var results = GradCheck.Run(device, () => model.Forward(ids, 2, 5), checkedParameters, maxCoordinates: 24);
        foreach (var r in results) Assert.True(r.RelativeError < 1e-2, r.ToString());
        model.ZeroGrad();
    }

}
