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
    [InlineData("shm")]
    public void MidStepFreesHappenOnlyOnTheMainStreamOnceALayersBackwardIsDone(string arch)
    {
        // Safety for concurrent branches: a block returned mid-step may be handed to any stream, so it must go back
        // on the main stream, after the block's branches have joined it.
        var device = TestDevice.Cpu;
        using var model = TwoLayers(device, arch);
        var freeStreams = new List<DeviceStream>();
        device.Allocator.OnFree = _ => freeStreams.Add(device.CurrentStream);
        try
        {
            using (device.BeginScope())
            {
                var loss = Loss(device, model);
                Assert.Empty(freeStreams);                    // nothing goes back during the forward
                device.Tape.Backward(loss);
                Assert.NotEmpty(freeStreams);
                Assert.All(freeStreams, stream => Assert.Same(device.DefaultStream, stream));
            }
        }
        finally
        {
            device.Allocator.OnFree = null;
            model.ZeroGrad();
        }
    }

    [Fact]
    public void WithoutSegmentReleasesNothingIsReturnedBeforeAStepEnds()
    {
        var device = TestDevice.Cpu;
        using var model = TwoLayers(device, "flowhn");
        device.Tape.ReleaseSegments = false;
        try
        {
            long frees;
            using (device.BeginScope())
            {
                frees = device.Allocator.Frees;
                device.Tape.Backward(Loss(device, model));
                Assert.Equal(frees, device.Allocator.Frees);
            }
            Assert.True(device.Allocator.Frees > frees);
        }
        finally
        {
            device.Tape.ReleaseSegments = true;
            model.ZeroGrad();
        }
    }

    [Theory]
    [InlineData("flowhn")]
    [InlineData("transformer")]
    [InlineData("shm")]
    [InlineData("hymba")]
    public void ReleasedMemoryIsNeverReadAgain(string arch)
    {
        // Every returned block is overwritten with NaN at once: if a later kernel still read one, the gradients
        // would differ from a run that keeps everything until the step ends.
        var device = TestDevice.Cpu;
        float[] Gradients(bool release)
        {
            using var model = TwoLayers(device, arch);
            device.Tape.ReleaseSegments = release;
            device.Allocator.OnFree = block => device.Kernels.Elementwise.Fill(block.View, float.NaN);
            try
            {
                using (device.BeginScope()) device.Tape.Backward(Loss(device, model));
                return model.Parameters().SelectMany(p => p.Grad!.ToArray()).ToArray();
            }
            finally
            {
                device.Allocator.OnFree = null;
                device.Tape.ReleaseSegments = true;
            }
        }
        var kept = Gradients(release: false);
        var released = Gradients(release: true);
        Assert.All(released, g => Assert.True(float.IsFinite(g)));
        Assert.Equal(kept, released);
    }

    private static FlowHN.Models.LanguageModel TwoLayers(ComputeDevice device, string arch)
    {
        var config = FlowHN.Models.Presets.Get(arch, "tiny", 64) with { Dim = 16, Heads = 2, KvHeads = 1, MlpHidden = 32, Layers = 2 };
        var model = FlowHN.Models.LanguageModel.Create(device, config, seed: 1);
        if (model is FlowHN.Models.FlowHNLM flowhn) flowhn.BranchConcurrency = true; // two streams (serial on the CPU)
        return model;
    }

    private static Tensor Loss(ComputeDevice device, FlowHN.Models.LanguageModel model)
    {
        var ids = TokenIndex.FromHost(device, Reference.RandomInts(24, 64, 2), 2, 12);
        var targets = Tensor.FromArray(device, Reference.RandomInts(24, 64, 3), 24);
        return Ops.CrossEntropy(model.Forward(ids, 2, 12), targets, overwriteLogits: true);
    }
}
