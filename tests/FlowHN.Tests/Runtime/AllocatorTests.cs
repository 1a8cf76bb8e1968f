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
        var allocator = device.Runtime.Allocator;
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
        long driverAllocations = device.Runtime.Allocator.DriverAllocations;
        long inUse = device.Runtime.Allocator.BytesInUse;
        for (int i = 0; i < 3; i++) Step();
        Assert.Equal(driverAllocations, device.Runtime.Allocator.DriverAllocations);
        Assert.Equal(inUse, device.Runtime.Allocator.BytesInUse); // every step returns what it took
        Assert.True(device.Runtime.Allocator.CacheHits > 0);
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
    [InlineData("flowhn", false)]
    [InlineData("flowhn", true)]
    [InlineData("hymba", false)]
    [InlineData("shm", true)]
    public void MidStepFreesHappenOnlyOnTheMainStream(string arch, bool recompute)
    {
        // Safety for concurrent branches: a block returned mid-step may be handed to any stream, so it must go back
        // on the main stream, after the block's branches have joined it.
        var device = TestDevice.Cpu;
        using var model = TwoLayers(device, arch);
        model.Recompute = recompute;
        var freeStreams = new List<DeviceStream>();
        device.Runtime.Allocator.OnFree = _ => freeStreams.Add(device.Runtime.CurrentStream);
        try
        {
            using (device.BeginScope())
            {
                var loss = Loss(device, model);
                if (!recompute) Assert.Empty(freeStreams);    // without recomputation nothing goes back in the forward
                device.Tape.Backward(loss);
                Assert.NotEmpty(freeStreams);
                Assert.All(freeStreams, stream => Assert.Same(device.Runtime.DefaultStream, stream));
            }
        }
        finally
        {
            device.Runtime.Allocator.OnFree = null;
            model.ZeroGrad();
        }
    }

    [Fact]
    public void WithoutSegmentReleasesNothingIsReturnedBeforeAStepEnds()
    {
        using var device = new Session(TestDevice.Cpu.Runtime); // its own tape: the setting stays here
        device.Tape.ReleaseSegments = false;
        using var model = TwoLayers(device, "flowhn");
        long frees;
        using (device.BeginScope())
        {
            frees = device.Runtime.Allocator.Frees;
            device.Tape.Backward(Loss(device, model));
            Assert.Equal(frees, device.Runtime.Allocator.Frees);
        }
        Assert.True(device.Runtime.Allocator.Frees > frees);
    }

    [Theory]
    [InlineData("flowhn")]
    [InlineData("transformer")]
    [InlineData("shm")]
    [InlineData("hymba")]
    [InlineData("mamba2")]
    public void ReleasedMemoryIsNeverReadAgainAndRecomputingChangesNothing(string arch)
    {
        // Every returned block is overwritten with NaN at once: if a later kernel still read one, the gradients
        // would differ from a run that keeps everything until the step ends.
        float[] Gradients(bool release, bool recompute)
        {
            using var device = new Session(TestDevice.Cpu.Runtime); // its own tape: the setting stays here
            device.Tape.ReleaseSegments = release;
            using var model = TwoLayers(device, arch);
            model.Recompute = recompute;
            device.Runtime.Allocator.OnFree = block => device.Kernels.Elementwise.Fill(block.View, float.NaN);
            try
            {
                using (device.BeginScope()) device.Tape.Backward(Loss(device, model));
                return model.Parameters().SelectMany(p => p.Grad!.ToArray()).ToArray();
            }
            finally
            {
                device.Runtime.Allocator.OnFree = null; // the allocator belongs to the shared device
            }
        }
        var kept = Gradients(release: false, recompute: false);
        Assert.All(kept, g => Assert.True(float.IsFinite(g)));
        Assert.Equal(kept, Gradients(release: true, recompute: false));
        Assert.Equal(kept, Gradients(release: true, recompute: true));
    }

    [Theory]
    [InlineData("flowhn")]
    [InlineData("jamba")]
    public void RecomputingKeepsOnlyTheLayersOutputs(string arch)
    {
        var device = TestDevice.Cpu;
        var config = FlowHN.Models.Presets.Get(arch, "tiny", 256) with { Layers = 8 };
        double Activations(bool recompute)
        {
            using var model = FlowHN.Models.LanguageModel.Create(device, config, seed: 1);
            model.Recompute = recompute;
            long before = device.Runtime.Allocator.RequestedBytesInUse;
            device.Runtime.Allocator.ResetPeak();
            using (device.BeginScope()) device.Tape.Backward(Loss(device, model, batch: 2, seqLen: 64));
            model.ZeroGrad();
            return device.Runtime.Allocator.PeakRequestedBytes - before;
        }
        double kept = Activations(recompute: false), recomputed = Activations(recompute: true);
        Assert.True(recomputed < 0.5 * kept, $"{recomputed} vs {kept} bytes");
    }

    private static FlowHN.Models.LanguageModel TwoLayers(Session device, string arch)
    {
        var config = FlowHN.Models.Presets.Get(arch, "tiny", 64) with { Dim = 16, Heads = 2, KvHeads = 1, MlpHidden = 32, Layers = 2 };
        var model = FlowHN.Models.LanguageModel.Create(device, config, seed: 1);
        if (model is FlowHN.Models.FlowHNLM flowhn) flowhn.BranchConcurrency = true; // two streams (serial on the CPU)
        return model;
    }

    private static Tensor Loss(Session device, FlowHN.Models.LanguageModel model, int batch = 2, int seqLen = 12)
    {
        int vocab = model.Config.VocabSize;
        var ids = TokenIndex.FromHost(device, Reference.RandomInts(batch * seqLen, vocab, 2), batch, seqLen);
        var targets = Tensor.FromArray(device, Reference.RandomInts(batch * seqLen, vocab, 3), batch * seqLen);
        return Ops.CrossEntropy(model.Forward(ids, batch, seqLen), targets, overwriteLogits: true);
    }
}
