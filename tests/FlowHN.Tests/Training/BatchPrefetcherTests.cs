using FlowHN.Data;
using FlowHN.Runtime;
using FlowHN.Tensors;
using FlowHN.Training;

namespace FlowHN.Tests.Training;

/// <summary>
/// The training loop's batch source: batches drawn on a worker thread into page-locked buffers and uploaded
/// without a host wait must be exactly the loader's batches in the loader's order, with the same id plan.
/// </summary>
public class BatchPrefetcherTests
{
    private static int[] Tokens(int n) => Enumerable.Range(0, n).Select(i => (i * 7919 + i / 3) % 97).ToArray();

    [Fact]
    public void BatchesArriveInTheLoadersOrderWithTheSamePlanAndPosition()
    {
        var device = TestDevice.Cpu;
        var tokens = Tokens(500);
        var reference = new TokenLoader(tokens, 11);
        var loader = new TokenLoader(tokens, 11);
        using var batches = new BatchPrefetcher(device, 3, 8,
            (inputs, targets) => { loader.Fill(inputs, targets, 8); return loader.State; }, loader.State);
        Assert.Equal(11ul, batches.Position);
        for (int n = 0; n < 5; n++)
        {
            using var scope = device.BeginScope();
            var expected = reference.NextBatch(3, 8);
            var host = TokenIndex.FromBatch(device, expected.Inputs, expected.Targets, 3, 8);
            var pinned = batches.Next();
            Assert.Equal(reference.State, batches.Position); // what a checkpoint saves: the batch after this one comes next
            Assert.Equal(new[] { 3, 8 }, pinned.Ids.Shape.ToArray());
            Assert.Equal(host.MaxId, pinned.MaxId);
            foreach (var (a, b) in new[] { (host.Ids, pinned.Ids), (host.DistinctIds, pinned.DistinctIds), (host.Starts, pinned.Starts),
                         (host.Order, pinned.Order), (host.Targets!, pinned.Targets!) })
                Assert.Equal(a.ToIntArray(), b.ToIntArray());
        }
    }

    [Fact]
    public void AnUploadFromPinnedMemoryIsCountedAsAnUploadWithoutAHostSync()
    {
        var device = TestDevice.Cpu;
        var loader = new TokenLoader(Tokens(300), 5);
        using var batches = new BatchPrefetcher(device, 2, 4, (inputs, targets) => { loader.Fill(inputs, targets, 4); return loader.State; });
        var c = device.Runtime.Counters;
        for (int n = 0; n < 3; n++)
        {
            using var scope = device.BeginScope();
            var before = (c.Uploads, c.HostSyncs, c.Downloads, c.StagingWaits);
            batches.Next();
            Assert.Equal((before.Uploads + 1, before.HostSyncs, before.Downloads, before.StagingWaits),
                (c.Uploads, c.HostSyncs, c.Downloads, c.StagingWaits));
        }
    }

    [Fact]
    public void AnExceptionOnTheWorkerIsThrownOnTheCallerWithItsMessage()
    {
        var device = TestDevice.Cpu;
        var loader = new TokenLoader(Tokens(5), 1); // too short for one window of 8 + 1 tokens
        using var batches = new BatchPrefetcher(device, 1, 8, (inputs, targets) => { loader.Fill(inputs, targets, 8); return loader.State; });
        using var scope = device.BeginScope();
        var e = Assert.Throws<UserException>(() => batches.Next());
        Assert.Contains("fewer than seq_len + 1 = 9", e.Message);
        Assert.Throws<UserException>(() => batches.Next()); // and again, never a hang
    }

    [Fact]
    public void DisposeStopsTheWorkerAlsoWhileItWaitsForAFreeBuffer()
    {
        var device = TestDevice.Cpu;
        int drawn = 0;
        var batches = new BatchPrefetcher(device, 1, 4, (inputs, targets) =>
        {
            Interlocked.Increment(ref drawn);
            inputs.Fill(1);
            targets.Fill(2);
            return 0;
        });
        using (device.BeginScope()) batches.Next();
        // The batch in use and the one prepared ahead fill both buffers: the worker waits for a free one.
        SpinWait.SpinUntil(() => Volatile.Read(ref drawn) == 2, TimeSpan.FromSeconds(10));
        Assert.True(batches.WorkerAlive);
        batches.Dispose();
        Assert.False(batches.WorkerAlive);
        Assert.Equal(2, drawn); // never more than one batch ahead
        Assert.Throws<ObjectDisposedException>(() => batches.Next());
    }
}
