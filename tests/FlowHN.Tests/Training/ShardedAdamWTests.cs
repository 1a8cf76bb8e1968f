using FlowHN.Autograd;
using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Training;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Tests.Training;

/// <summary>
/// The sharded AdamW of ZeRO-1 in one process: three shards stepped one after another on one model (their
/// all-gather is then a no-op) against the plain AdamW on an identical model, and a sharded checkpoint round trip.
/// </summary>
public class ShardedAdamWTests
{
    private const int Ranks = 3;

    /// <summary>Stands in for the other ranks: every shard lives in this process's one store, so nothing moves.</summary>
    private sealed class SameStore : IShardSync
    {
        public void SumOverRanks(ArrayView<float> value) { } // without clipping the norm changes no update
        public void GatherWeights() { }
    }

    private static LanguageModel Model() =>
        LanguageModel.Create(TestDevice.Cpu, ArchitectureRegistry.Get("transformer").Config("tiny", 100), 5);

    private static TokenBatch Batch(int seed)
    {
        var tokens = Reference.RandomInts(2 * 17, 100, seed);
        var inputs = Enumerable.Range(0, 2).SelectMany(r => tokens[(r * 17)..(r * 17 + 16)]).ToArray();
        var targets = Enumerable.Range(0, 2).SelectMany(r => tokens[(r * 17 + 1)..(r * 17 + 17)]).ToArray();
        return new TokenBatch(inputs, targets, 2, 16);
    }

    private static List<AdamW> Shards(LanguageModel model)
    {
        var store = model.Parameters().First().Store!;
        return Enumerable.Range(0, Ranks).Select(r => new AdamW(model.Device, model.Parameters().ToList(), maxGradNorm: 0,
            shard: ParameterShard.Balanced(store.Length, Ranks, r)) { Sync = new SameStore() }).ToList();
    }

    private static void Step(LanguageModel model, int seed, IEnumerable<AdamW> optimizers)
    {
        var device = model.Device;
        using (device.BeginScope())
        {
            device.Tape.Backward(Evaluation.Loss(device, model, Batch(seed)));
            foreach (var optimizer in optimizers) optimizer.Step(1e-2);
        }
        model.ZeroGrad();
    }

    private static float[] Weights(LanguageModel model)
    {
        var store = model.Parameters().First().Store!;
        var host = new float[store.Length];
        store.Weights.CopyToCPU(model.Device.Runtime.CurrentStream.Native, host);
        model.Device.Runtime.CurrentStream.Synchronize();
        return host;
    }

    private static (float[] M, float[] V) Concatenated(IEnumerable<AdamW> shards)
    {
        var parts = shards.Select(s => s.ShardMoments()).ToList();
        return (parts.SelectMany(p => p.M).ToArray(), parts.SelectMany(p => p.V).ToArray());
    }

    [Fact]
    public void ShardsSteppedTogetherAreThePlainOptimizerBitForBit()
    {
        using var plainModel = Model();
        using var shardedModel = Model();
        using var plain = new AdamW(plainModel.Device, plainModel.Parameters().ToList(), maxGradNorm: 0);
        var shards = Shards(shardedModel);
        try
        {
            var store = shardedModel.Parameters().First().Store!;
            // A shard boundary inside the decayed range and one inside the rest: both update ranges are split.
            Assert.Contains(shards, s => s.Shard!.Offset < store.DecayLength && store.DecayLength < s.Shard.Offset + s.Shard.Length);
            Assert.Equal(store.Length, shards.Sum(s => s.MomentBytes) / 8);
            for (int step = 0; step < 3; step++)
            {
                Step(plainModel, 20 + step, [plain]);
                Step(shardedModel, 20 + step, shards);
            }
            Assert.Equal(Weights(plainModel), Weights(shardedModel));
            var (m, v) = Concatenated(shards);
            var (plainM, plainV) = plain.ShardMoments();
            Assert.Equal(plainM, m);
            Assert.Equal(plainV, v);
            Assert.Throws<InvalidOperationException>(() => shards[0].StateOf(shardedModel.Parameters().First()));
        }
        finally
        {
            foreach (var s in shards) s.Dispose();
        }
    }

    [Fact]
    public void AShardedCheckpointIsTheSingleProcessFormatAndLoadsBackIntoShards()
    {
        using var folder = new TempFolder();
        using var model = Model();
        var shards = Shards(model);
        var reloaded = Shards(model);
        using var plain = new AdamW(model.Device, model.Parameters().ToList());
        try
        {
            Step(model, 7, shards);
            var state = new TrainState(1, 0, 1, 32, "bytes", new TrainOptions { Batch = 2, SeqLen = 16 });
            Checkpoint.SaveNext(folder.Path, model, shards[0], state, Concatenated(shards));
            Checkpoint.Promote(folder.Path);
            string dir = Checkpoint.PathIn(folder.Path);

            foreach (var s in reloaded) Checkpoint.LoadInto(dir, model, s);
            Assert.Equal(Concatenated(shards).M, Concatenated(reloaded).M);
            Assert.Equal(Concatenated(shards).V, Concatenated(reloaded).V);
            Assert.Contains(Concatenated(reloaded).V, x => x > 0);

            // A plain optimizer loads the same file: the moments land at the same places of the flat buffer.
            Checkpoint.LoadInto(dir, model, plain);
            Assert.Equal(Concatenated(shards).M, plain.ShardMoments().M);
            Assert.Equal(Concatenated(shards).V, plain.ShardMoments().V);
        }
        finally
        {
            foreach (var s in shards.Concat(reloaded)) s.Dispose();
        }
    }
}
