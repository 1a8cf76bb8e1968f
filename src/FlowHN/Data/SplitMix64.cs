namespace FlowHN.Data;

/// <summary>
/// SplitMix64 (Steele, Lea, Flood 2014): the whole generator state is one ulong, so a checkpoint can store
/// it and a resumed run draws exactly the numbers an uninterrupted run would have drawn. Unlike
/// System.Random, its sequence is fixed by this code, not by the runtime version.
/// </summary>
public struct SplitMix64(ulong state)
{
    public ulong State = state;

    public ulong Next()
    {
        var z = State += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>
    /// Uniform in [0, bound) by the multiply-high method; the bias is at most bound / 2^64, far below
    /// anything a training run could notice.
    /// </summary>
    public long NextBelow(long bound)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bound, 1);
        return (long)(((UInt128)Next() * (ulong)bound) >> 64);
    }
}
