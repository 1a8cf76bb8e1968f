using FlowHN.Data;
using FlowHN.Runtime;

namespace FlowHN.Tests.Data;

public class TokenLoaderTests
{
    // Distinct values in random order: every window can be located in the data by its first token.
    private static int[] ShuffledData(int count)
    {
        var tokens = Enumerable.Range(0, count).ToArray();
        new Random(5).Shuffle(tokens);
        return tokens;
    }

    [Fact]
    public void SplitMix64MatchesPublishedReferenceOutputs()
    {
        // First outputs for seed 1234567 (Rosetta Code, "Pseudo-random numbers/Splitmix64").
        var random = new SplitMix64(1234567);
        ulong[] expected = [6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431, 16408922859458223821];
        Assert.Equal(expected, Enumerable.Range(0, 5).Select(_ => random.Next()));
    }

    [Fact]
    public void SameSeedSameBatchesDifferentSeedDifferentBatches()
    {
        var data = ShuffledData(1000);
        var a = new TokenLoader(data, 42);
        var b = new TokenLoader(data, 42);
        var c = new TokenLoader(data, 43);
        for (var step = 0; step < 5; step++)
        {
            var (x, y, z) = (a.NextBatch(4, 16), b.NextBatch(4, 16), c.NextBatch(4, 16));
            Assert.Equal(x.Inputs, y.Inputs);
            Assert.Equal(x.Targets, y.Targets);
            Assert.NotEqual(x.Inputs, z.Inputs);
        }
    }

    [Fact]
    public void TargetsAreInputsShiftedByOneAndComeFromTheData()
    {
        var data = ShuffledData(500);
        var position = new int[data.Length];
        for (var i = 0; i < data.Length; i++)
        {
            position[data[i]] = i;
        }

        var loader = new TokenLoader(data, 7);
        const int seqLen = 12;
        for (var step = 0; step < 20; step++)
        {
            var batch = loader.NextBatch(3, seqLen);
            Assert.Equal(3 * seqLen, batch.Inputs.Length);
            for (var row = 0; row < 3; row++)
            {
                var start = position[batch.Inputs[row * seqLen]];
                Assert.Equal(data.AsSpan(start, seqLen).ToArray(), batch.Inputs.AsSpan(row * seqLen, seqLen).ToArray());
                Assert.Equal(data.AsSpan(start + 1, seqLen).ToArray(), batch.Targets.AsSpan(row * seqLen, seqLen).ToArray());
            }
        }
    }

    [Fact]
    public void EveryStartIsReachableAndNoWindowRunsPastTheEnd()
    {
        // seq_len + 2 tokens leave exactly two windows: starting at 0 and at 1.
        var data = new[] { 10, 11, 12, 13, 14, 15 };
        var loader = new TokenLoader(data, 1);
        var firsts = new HashSet<int>();
        for (var step = 0; step < 64; step++)
        {
            var batch = loader.NextBatch(1, 4);
            firsts.Add(batch.Inputs[0]);
            Assert.Equal(batch.Inputs[0] + 4, batch.Targets[^1]);
        }

        Assert.Equal([10, 11], firsts.Order());
    }

    [Fact]
    public void ResumingFromStateContinuesExactlyLikeAnUninterruptedRun()
    {
        var data = ShuffledData(2000);
        var uninterrupted = new TokenLoader(data, 1234);
        var batches = Enumerable.Range(0, 6).Select(_ => uninterrupted.NextBatch(2, 32)).ToList();

        var first = new TokenLoader(data, 1234);
        for (var i = 0; i < 3; i++)
        {
            first.NextBatch(2, 32);
        }

        var resumed = new TokenLoader(data, seed: 999) { State = first.State }; // as if read from a checkpoint
        for (var i = 3; i < 6; i++)
        {
            var batch = resumed.NextBatch(2, 32);
            Assert.Equal(batches[i].Inputs, batch.Inputs);
            Assert.Equal(batches[i].Targets, batch.Targets);
        }
    }

    [Fact]
    public void TooLittleDataIsAUserError()
    {
        var loader = new TokenLoader([1, 2, 3, 4], 0);
        var error = Assert.Throws<UserException>(() => loader.NextBatch(1, 4));
        Assert.Contains("seq_len + 1 = 5", error.Message);
        Assert.Equal([1, 2, 3], loader.NextBatch(1, 3).Inputs); // exactly seq_len + 1 tokens is enough
    }

    [Fact]
    public void EvalBatchesAreConsecutiveWindowsAndRepeatable()
    {
        var data = ShuffledData(100);
        var first = TokenLoader.EvalBatches(data, 2, 10, maxBatches: 100).ToList();
        var second = TokenLoader.EvalBatches(data, 2, 10, maxBatches: 100).ToList();

        Assert.Equal(4, first.Count); // (100 - 1) / 10 = 9 windows -> 4 full batches of 2
        for (var b = 0; b < first.Count; b++)
        {
            Assert.Equal(first[b].Inputs, second[b].Inputs);
            Assert.Equal(data.AsSpan(b * 20, 20).ToArray(), first[b].Inputs);
            Assert.Equal(data.AsSpan(b * 20 + 1, 20).ToArray(), first[b].Targets);
        }

        Assert.Equal(2, TokenLoader.EvalBatches(data, 2, 10, maxBatches: 2).Count());
        Assert.Throws<UserException>(() => TokenLoader.EvalBatches(data, 8, 20, maxBatches: 1));
    }
}
