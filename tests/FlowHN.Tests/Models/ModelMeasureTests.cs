using FlowHN.Autograd;
using FlowHN.Models;
using FlowHN.Runtime;

namespace FlowHN.Tests.Models;

/// <summary>
/// The numbers measured on a shape-only device (parameters from the module tree, FLOPs from the launch counters)
/// against a Transformer's closed forms, written here once as an independent reference, and the shape-only
/// device's promise: a 1B model measured without its memory.
/// </summary>
public class ModelMeasureTests
{
    private static readonly ModelConfig Transformer = new()
    {
        Arch = "transformer", VocabSize = 37, Dim = 16, Layers = 3, Heads = 4, KvHeads = 2, MlpHidden = 40, Rope = true,
    };

    [Fact]
    public void TransformerParametersMatchTheClosedForm()
    {
        var c = Transformer;
        long kv = (long)c.KvHeads * c.HeadDim;
        long layer = 2L * c.Dim * c.Dim + 2 * c.Dim * kv + 3L * c.Dim * c.MlpHidden + 2 * c.Dim;
        Assert.Equal(2L * c.VocabSize * c.Dim + c.Dim + c.Layers * layer, LanguageModel.CountParameters(c));
    }

    [Theory]
    [InlineData(24)]
    [InlineData(7)]
    public void TransformerFlopsMatchTheClosedForm(int length)
    {
        var c = Transformer;
        int kv = c.KvHeads * c.HeadDim;
        // Per token: every matrix product's 2 in x out, causal attention's scores and values over (L + 1) / 2
        // keys on average; the LM head over the real vocabulary (its padding columns are counted apart).
        double layer = 2.0 * (2 * c.Dim * c.Dim + 2 * c.Dim * kv + 3 * c.Dim * c.MlpHidden) + 4.0 * c.HeadDim * c.Heads * (length + 1) / 2.0;
        double forward = c.Layers * layer + 2.0 * c.Dim * c.VocabSize;
        var flops = ModelMeasure.Flops(c, length);
        Assert.True(Math.Abs(flops.Forward / forward - 1) < 1e-12, $"forward {flops.Forward}, closed form {forward}");
        // A backward is twice its forward, product by product.
        Assert.True(Math.Abs(flops.Training / (3 * forward) - 1) < 1e-12, $"training {flops.Training}, closed form {3 * forward}");
    }

    [Fact]
    public void AOneBillionParameterModelIsMeasuredWithoutItsMemory()
    {
        var config = Presets.Get("flowhn", "1b", 50257);
        long before = GC.GetTotalMemory(forceFullCollection: true);
        long parameters = LanguageModel.CountParameters(config);
        var flops = ModelMeasure.Flops(config, 1024);
        long grown = GC.GetTotalMemory(forceFullCollection: true) - before;
        Assert.InRange(parameters, 1_000_000_000L, 1_300_000_000L);
        // Each token goes to one branch of a block, so a step costs less than 6 FLOPs per parameter, but more than 2.
        Assert.InRange(flops.Training, 2.0 * parameters, 6.0 * parameters);
        Assert.True(grown < 256L << 20, $"measuring grew the managed heap by {grown / (double)(1 << 20):0} MiB");
    }

    [Fact]
    public void AShapeOnlyDeviceKeepsTheBooksWithoutMemory()
    {
        using var session = Session.Create(new DeviceOptions { Meta = true, Device = DeviceKind.Cpu });
        var allocator = session.Runtime.Allocator;
        var block = allocator.Allocate(3L << 30); // 12 GiB: no machine running the tests has it to spare
        Assert.True(block.IsMeta);
        Assert.Equal(12L << 30, allocator.BytesInUse);
        Assert.Equal(3L << 30, block.View.Length);
        allocator.Free(block);
        Assert.Equal(0, allocator.BytesInUse);
        Assert.Equal(12L << 30, allocator.BytesReserved); // cached, as on a real device
        allocator.ReleaseCached();
        Assert.Equal(0, allocator.BytesReserved);
    }
}
