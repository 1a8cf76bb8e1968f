using FlowHN.Autograd;
using FlowHN.Models;
using FlowHN.Tensors;

namespace FlowHN.Tests.Models;

/// <summary>
/// The FLOPs a model reports (MFU, <c>flowhn models</c>), counted in a forward and backward on a shape-only
/// device, against the FLOPs the launchers issue in a real forward and backward: matrix products as launched,
/// attention by its visible pairs, the scan and the conv by their shapes.
/// </summary>
public class FlopAccountingTests
{
    public static IEnumerable<object[]> Architectures()
    {
        foreach (var arch in new[] { "transformer", "mamba", "mamba2", "shm", "jamba", "hymba" })
            yield return [arch, SplitStrategy.None, SplitContext.Local];
        foreach (var split in Enum.GetValues<SplitStrategy>())
            foreach (var context in Enum.GetValues<SplitContext>())
                yield return ["flowhn", split, context];
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void ShapeOnlyCountEqualsLaunchedFlops(string arch, SplitStrategy split, SplitContext context)
    {
        var device = TestDevice.Cpu;
        const int batch = 2, length = 24;
        var config = new ModelConfig
        {
            Arch = arch, VocabSize = 37, Dim = 16, Layers = arch == "flowhn" ? 3 : 5, Heads = 4, KvHeads = 2, MlpHidden = 40,
            Rope = arch == "transformer", MambaState = 8, Split = split, SplitContext = context,
        };
        using var model = LanguageModel.Create(device, config, seed: 1);
        var tokens = Reference.RandomInts(batch * (length + 1), config.VocabSize, 2);
        using (var scope = device.BeginScope())
        {
            var ids = TokenIndex.FromHost(device, tokens[..(batch * length)], batch, length);
            var targets = Tensor.FromArray(device, tokens[1..(batch * length + 1)], batch * length);
            device.Runtime.Counters.Reset();
            var loss = Ops.CrossEntropy(model.Forward(ids, batch, length), targets);
            device.Tape.Backward(loss);
        }
        double launched = device.Runtime.Counters.ModelFlops;
        double predicted = LanguageModel.TrainingFlopsPerToken(config, length) * batch * length;
        model.ZeroGrad();
        Assert.True(launched > 0);
        Assert.True(Math.Abs(launched / predicted - 1) < 1e-9,
            $"{arch} {split}/{context}: launched {launched:E6}, shape-only count {predicted:E6} ({launched / predicted - 1:P4})");
    }
}
