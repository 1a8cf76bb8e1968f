using FlowHN.Autograd;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Tests.Runtime;

public class AllocatorTests
{
    [Fact]
    public void BucketsRoundUp()
    {
        Assert.Equal(64, CachingAllocator.BucketFor(1));
        Assert.Equal(128, CachingAllocator.BucketFor(65));
        Assert.Equal(1 << 20, CachingAllocator.BucketFor((1 << 20) - 5));
        Assert.Equal(2L << 20, CachingAllocator.BucketFor((1 << 20) + 1));
    }

    [Fact]
    public void FreedBlocksAreReused()
    {
        var device = TestDevice.Cpu;
        var allocator = device.Allocator;
        var a = Tensor.Empty(device, [1000]);
        a.Dispose();
        long before = allocator.DriverAllocations;
        var b = Tensor.Empty(device, [900]); // same bucket (1024)
        Assert.Equal(before, allocator.DriverAllocations);
        b.Dispose();
    }

    [Fact]
    public void RepeatedTrainingStepMakesNoDriverAllocations()
    {
        var device = TestDevice.Cpu;
        using var weight = Parameter.Create(device, "w", [16, 8], Reference.Random(128, 1, 0.1), weightDecay: true);
        using var norm = Parameter.Create(device, "norm", [16], Enumerable.Repeat(1f, 16).ToArray(), weightDecay: false);
        using var table = Parameter.Create(device, "emb", [32, 8], Reference.Random(256, 2, 0.1), weightDecay: false);
        using var ids = TokenIndex.FromHost(device, Reference.RandomInts(12, 32, 3), 12);
        using var targets = Tensor.FromArray(device, Reference.RandomInts(12, 16, 4), 12);

        void Step()
        {
            using var scope = device.BeginScope();
            var h = Ops.Linear(Ops.Embedding(ids, table), weight);
            var loss = Ops.CrossEntropy(Ops.RmsNorm(Ops.Silu(h), norm), targets);
            device.Tape.Backward(loss);
        }

        Step(); // warm-up fills the cache
        long driverAllocations = device.Allocator.DriverAllocations;
        long inUse = device.Allocator.BytesInUse;
        for (int i = 0; i < 3; i++) Step();
        Assert.Equal(driverAllocations, device.Allocator.DriverAllocations);
        Assert.Equal(inUse, device.Allocator.BytesInUse); // every step returns what it took
        Assert.True(device.Allocator.CacheHits > 0);
    }

    [Fact]
    public void UsingAFreedTensorThrows()
    {
        var device = TestDevice.Cpu;
        Tensor t;
        using (device.BeginScope()) t = Tensor.Empty(device, [4]);
        Assert.Throws<ObjectDisposedException>(() => t.View);
    }

    [Theory]
    [InlineData("flowhn")]
    [InlineData("hymba")]
    public void NothingIsReturnedToTheAllocatorBeforeAStepEnds(string arch)
    {
        // Safety for concurrent branches: memory may only go back when the step's scope ends.
        var device = TestDevice.Cpu;
        var config = FlowHN.Models.Presets.Get(arch, "tiny", 64) with { Dim = 16, Heads = 2, KvHeads = 1, MlpHidden = 32, Layers = 2 };
        using var model = FlowHN.Models.LanguageModel.Create(device, config, seed: 1);
        using var optimizer = new FlowHN.Training.AdamW(device, model.Parameters().ToList());
        long frees;
        using (device.BeginScope())
        {
            var ids = TokenIndex.FromHost(device, Reference.RandomInts(24, 64, 2), 2, 12);
            var targets = Tensor.FromArray(device, Reference.RandomInts(24, 64, 3), 24);
            frees = device.Allocator.Frees;
            device.Tape.Backward(Ops.CrossEntropy(model.Forward(ids, 2, 12), targets, overwriteLogits: true));
            optimizer.Step(1e-3);
            Assert.Equal(frees, device.Allocator.Frees);
        }
        Assert.True(device.Allocator.Frees > frees);
        model.ZeroGrad();
    }
}
