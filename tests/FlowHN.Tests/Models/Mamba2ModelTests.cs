using FlowHN.Autograd;
using FlowHN.Models;
using FlowHN.Nn;
using FlowHN.Tensors;

namespace FlowHN.Tests.Models;

/// <summary>The Mamba-2 mixer's layout and initialisation, its gradients, and the sizes the presets give it.</summary>
public class Mamba2ModelTests
{
    private static readonly ModelConfig Tiny = new() { Arch = "mamba2", VocabSize = 11, Dim = 8, Layers = 2, MlpHidden = 12, Rope = false };

    [Fact]
    public void ParameterCountAndNamesFollowTheMamba2Layout()
    {
        using var model = new SequentialLM(TestDevice.Cpu, Tiny, seed: 1).Allocated();
        Assert.Equal(LanguageModel.CountParameters(Tiny), model.ParameterCount);
        var s = Tiny.Mamba2; // d_inner 16 in one head of 16, d_state 16, one group
        Assert.Equal((16, 1, 16), (s.Inner, s.Heads, s.States));
        var byName = model.Parameters().ToDictionary(p => p.Name);
        Assert.Equal([2 * 16 + 2 * 16 + 1, 8], byName["layers.0.mamba2.in_proj.weight"].Shape); // z, x, B, C, dt
        Assert.Equal([16 + 2 * 16, 4], byName["layers.0.mamba2.conv1d.weight"].Shape);
        Assert.Equal([48], byName["layers.0.mamba2.conv1d.bias"].Shape);
        Assert.Equal([16], byName["layers.1.mamba2.norm.weight"].Shape);
        Assert.Equal([8, 16], byName["layers.1.mamba2.out_proj.weight"].Shape);
        foreach (var name in new[] { "A_log", "D", "dt_bias" })
        {
            Assert.Equal([1], byName[$"layers.1.mamba2.{name}"].Shape);
            Assert.False(byName[$"layers.1.mamba2.{name}"].WeightDecay);
        }
        Assert.InRange(Math.Exp(byName["layers.0.mamba2.A_log"].ToArray()[0]), 1, 16); // -A in [1, 16]
        double dt = Math.Log(1 + Math.Exp(byName["layers.0.mamba2.dt_bias"].ToArray()[0]));
        Assert.InRange(dt, 0.999e-3, 1.001e-1);
    }

    [Theory]
    [InlineData("tiny", 32, 16, 8)]
    [InlineData("135m", 64, 64, 24)]
    [InlineData("1b", 64, 128, 64)]
    public void PresetsUseTheMamba2PapersHeadSizes(string preset, int headDim, int states, int heads)
    {
        var s = Presets.Get("mamba2", preset, 50257).Mamba2;
        Assert.Equal((headDim, states, heads, 1), (s.HeadDim, s.States, s.Heads, s.Groups));
    }

    [Fact]
    public void MixerGradientsPassAFiniteDifferenceCheck()
    {
        var device = TestDevice.Cpu;
        var random = new Random(3);
        // Four heads of 4 sharing two B/C groups, chunks of 4 over 6 tokens: every path of the chunked scan.
        var shape = new Mamba2Shape(Dim: 8, Inner: 16, HeadDim: 4, Groups: 2, States: 3, ConvWidth: 4, Chunk: 4);
        using var mixer = new Mamba2Mixer(device, "mamba2", shape, 1e-6f, random, 0.5).Allocated();
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
