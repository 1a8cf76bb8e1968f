using FlowHN.Autograd;
using FlowHN.Models;
using MathNet.Numerics.Statistics;

namespace FlowHN.Tests.Autograd;

public class ParameterInitTests
{
    private const int Count = 3 * ParameterInit.BlockElements + 1234; // several blocks and a partial one

    [Fact]
    public void ValuesDependOnTheSeedAloneNotOnTheThreadCount()
    {
        foreach (var init in new[] { ParameterInit.Normal(0.02), ParameterInit.Uniform(0.5), ParameterInit.Draw(r => r.NextDouble()) })
        {
            var serial = Fill(init, 42, maxThreads: 1);
            Assert.Equal(serial, Fill(init, 42, maxThreads: 3));
            Assert.Equal(serial, Fill(init, 42, maxThreads: -1));
            Assert.NotEqual(serial, Fill(init, 43, maxThreads: 1));
            // Every block has a generator of its own: no block repeats another's values.
            var blocks = serial.Chunk(ParameterInit.BlockElements).Select(b => b[0]).ToList();
            Assert.Equal(blocks.Count, blocks.Distinct().Count());
        }
    }

    [Fact]
    public void DistributionsHaveTheirMoments()
    {
        var normal = Fill(ParameterInit.Normal(0.02), 7).Select(v => (double)v).ToArray();
        Assert.InRange(normal.Mean(), -0.0005, 0.0005);
        Assert.InRange(normal.StandardDeviation(), 0.0198, 0.0202);
        var uniform = Fill(ParameterInit.Uniform(0.5), 8);
        Assert.InRange(uniform.Min(), -0.5f, -0.499f);
        Assert.InRange(uniform.Max(), 0.499f, 0.5f);
        Assert.All(Fill(ParameterInit.Constant(1.5f), 9), v => Assert.Equal(1.5f, v));
        var byIndex = Fill(ParameterInit.FromIndex(i => i % 5), 10);
        Assert.Equal(Enumerable.Range(0, Count).Select(i => (float)(i % 5)), byIndex);
    }

    [Fact]
    public void ModelsFromTheSameSeedAreEqualAndOtherSeedsDiffer()
    {
        var device = TestDevice.Cpu;
        var config = Presets.Get("transformer", "tiny", 256) with { Layers = 1 };
        using var a = LanguageModel.Create(device, config, seed: 3);
        using var b = LanguageModel.Create(device, config, seed: 3);
        using var c = LanguageModel.Create(device, config, seed: 4);
        var first = a.Parameters().First(p => p.Name == "embed.weight");
        Assert.Equal(first.ToArray(), b.Parameters().First(p => p.Name == "embed.weight").ToArray());
        Assert.NotEqual(first.ToArray(), c.Parameters().First(p => p.Name == "embed.weight").ToArray());
        // Two weights of one model draw different values.
        var q = a.Parameters().First(p => p.Name.EndsWith("q_proj.weight")).ToArray();
        var o = a.Parameters().First(p => p.Name.EndsWith("o_proj.weight")).ToArray();
        Assert.NotEqual(q.Take(16), o.Take(16));
    }

    private static float[] Fill(ParameterInit init, ulong seed, int maxThreads = -1)
    {
        var values = new float[Count];
        init.Fill(values, seed, maxThreads);
        return values;
    }
}
