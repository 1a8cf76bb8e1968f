using FlowHN.Data;

namespace FlowHN.Autograd;

/// <summary>
/// How a parameter's initial values are drawn. Values are made when the model's buffers are allocated, in
/// parallel: each block of <see cref="BlockElements"/> values has its own generator, seeded from the
/// parameter's seed and the block's index, so the values depend on the seed alone, never on the thread count
/// or on which thread filled which block.
/// </summary>
public abstract class ParameterInit
{
    /// <summary>Values per independently seeded block.</summary>
    public const int BlockElements = 1 << 16;

    /// <summary>N(0, std) (MathNet's normal sampler).</summary>
    public static ParameterInit Normal(double std) => new NormalInit(std);

    /// <summary>Uniform in (-bound, bound).</summary>
    public static ParameterInit Uniform(double bound) => new DrawInit(r => (r.NextDouble() * 2 - 1) * bound);

    /// <summary>Each value from its own draw of <paramref name="sample"/>.</summary>
    public static ParameterInit Draw(Func<Random, double> sample) => new DrawInit(sample);

    public static ParameterInit Constant(float value) => new ValuesInit(i => value);

    /// <summary>Values that depend only on their index (no randomness).</summary>
    public static ParameterInit FromIndex(Func<long, float> value) => new ValuesInit(value);

    /// <summary>
    /// Fills <paramref name="values"/>, block by block on up to <paramref name="maxThreads"/> threads (-1: all
    /// cores), from <paramref name="seed"/>. The result is the same for every thread count.
    /// </summary>
    public void Fill(float[] values, ulong seed, int maxThreads = -1)
    {
        long blocks = (values.LongLength + BlockElements - 1) / BlockElements;
        Parallel.For(0L, blocks, new ParallelOptions { MaxDegreeOfParallelism = maxThreads }, block =>
        {
            int start = (int)(block * BlockElements);
            var span = values.AsSpan(start, (int)Math.Min(BlockElements, values.LongLength - start));
            FillBlock(span, start, BlockRandom(seed, block));
        });
    }

    protected abstract void FillBlock(Span<float> values, long start, Random random);

    /// <summary>A generator for one block, seeded by mixing the parameter's seed with the block index.</summary>
    private static Random BlockRandom(ulong seed, long block)
    {
        var mix = new SplitMix64(seed ^ (0xD1B54A32D192ED03UL * (ulong)(block + 1)));
        return new Random((int)(mix.Next() >> 33));
    }

    private sealed class NormalInit(double std) : ParameterInit
    {
        protected override void FillBlock(Span<float> values, long start, Random random)
        {
            var samples = new double[values.Length];
            MathNet.Numerics.Distributions.Normal.Samples(random, samples, 0, std);
            for (int i = 0; i < values.Length; i++) values[i] = (float)samples[i];
        }
    }

    private sealed class DrawInit(Func<Random, double> sample) : ParameterInit
    {
        protected override void FillBlock(Span<float> values, long start, Random random)
        {
            for (int i = 0; i < values.Length; i++) values[i] = (float)sample(random);
        }
    }

    private sealed class ValuesInit(Func<long, float> value) : ParameterInit
    {
        protected override void FillBlock(Span<float> values, long start, Random random)
        {
            for (int i = 0; i < values.Length; i++) values[i] = value(start + i);
        }
    }
}
