using FlowHN.Autograd;
using FlowHN.Models;
using FlowHN.Nn;
using FlowHN.Tensors;

namespace FlowHN.Tests.Models;

public class MambaModelTests
{
    private static readonly ModelConfig Tiny = new()
    {
        Arch = "mamba", VocabSize = 11, Dim = 8, Layers = 2, MlpHidden = 12, Rope = false, MambaState = 4,
    };

    [Fact]
    public void ParameterCountAndNamesFollowTheMambaLayout()
    {
        using var model = new SequentialLM(TestDevice.Cpu, Tiny, seed: 1).Allocated();
        Assert.Equal(LanguageModel.CountParameters(Tiny), model.ParameterCount);
        var byName = model.Parameters().ToDictionary(p => p.Name);
        Assert.Equal([32, 8], byName["layers.0.mamba.in_proj.weight"].Shape);   // 2 * d_inner
        Assert.Equal([16, 4], byName["layers.0.mamba.conv1d.weight"].Shape);
        Assert.Equal([9, 16], byName["layers.0.mamba.x_proj.weight"].Shape);    // dt_rank 1 + 2 * 4 states
        Assert.Equal([16, 1], byName["layers.0.mamba.dt_proj.weight"].Shape);
        Assert.Equal([16, 4], byName["layers.1.mamba.A_log"].Shape);
        Assert.False(byName["layers.1.mamba.A_log"].WeightDecay);
        Assert.False(byName["layers.1.mamba.D"].WeightDecay);
        Assert.Equal((float)Math.Log(3), byName["layers.1.mamba.A_log"].ToArray()[2], 6);
        // softplus(dt bias) lies in [1e-3, 1e-1]
        foreach (float b in byName["layers.0.mamba.dt_proj.bias"].ToArray())
        {
            double dt = Math.Log(1 + Math.Exp(b));
            Assert.InRange(dt, 0.999e-3, 1.001e-1);
        }
    }

    [Fact]
    public void MixerGradientsPassAFiniteDifferenceCheck()
    {
        var device = TestDevice.Cpu;
        var random = new Random(3);
        using var mixer = new MambaMixer(device, "mamba", MambaShape.For(8, state: 4), 1e-6f, random, 0.5).Allocated();
        int seed = 20;
        foreach (var p in mixer.Parameters().Where(p => p.Name.Contains("proj.weight")))
            p.CopyFrom(Reference.Random((int)p.Length, seed++, 0.5));
        var x = Tensor.FromArray(device, Reference.Random(2 * 6 * 8, 30), 2, 6, 8);
        x.RequiresGrad = true;
        using var positions = Tensor.FromArray(device, Enumerable.Range(0, 6).ToArray(), 6);
        var context = new SequenceContext(2, 6, positions);
        var inputs = new List<Tensor> { x };
        inputs.AddRange(mixer.Parameters());
        var results = GradCheck.Run(device, () => mixer.Forward(x, context), inputs, maxCoordinates: 16);
        foreach (var r in results) Assert.True(r.RelativeError < 1e-2, r.ToString());
        x.Dispose();
    }

}
