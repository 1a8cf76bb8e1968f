using FlowHN.Kernels;
using FlowHN.Runtime;
using FlowHN.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Tests.Kernels;

/// <summary>
/// Ranges longer than a kernel's 32-bit indices reach (the flat parameter buffers of a 1B model) are launched in
/// chunks. The chunk bound is a parameter, so these tests run the multi-chunk paths at small sizes.
/// </summary>
public class LongRangeTests
{
    [Fact]
    public void ChunksCoverTheRangeInOrder()
    {
        Assert.Equal([(0L, 4L), (4L, 4L), (8L, 2L)], Launch.Chunks(10, 4));
        Assert.Equal([(0L, 10L)], Launch.Chunks(10, 10));
        Assert.Empty(Launch.Chunks(0, 4));
        var far = Launch.Chunks(5L << 30, Launch.MaxElements).ToList();
        Assert.Equal(5L << 30, far.Sum(c => c.Count));
        Assert.Equal(5L << 30, far[^1].Start + far[^1].Count);
        Assert.All(far, c => Assert.InRange(c.Count, 1, Launch.MaxElements));
    }

    [Theory]
    [InlineData(nameof(ReductionKind.Sum))]
    [InlineData(nameof(ReductionKind.SumOfSquares))]
    [InlineData(nameof(ReductionKind.Max))]
    public void ChunkedReductionsAreExactAndReproducible(string kindName)
    {
        var kind = Enum.Parse<ReductionKind>(kindName); // by name: the kernel layer's enum is internal
        var device = TestDevice.Cpu;
        const int n = 1000;
        // Small integers: every partial sum is exact in float32, so any order must give the float64 reference.
        var random = new Random(5);
        var values = Enumerable.Range(0, n).Select(_ => (float)random.Next(-8, 9)).ToArray();
        values[n - 3] = 50; // the largest value sits in the last chunk
        double expected = kind switch
        {
            ReductionKind.Sum => values.Sum(v => (double)v),
            ReductionKind.SumOfSquares => values.Sum(v => (double)v * v),
            _ => values.Max(),
        };
        using var x = Tensor.FromArray(device, values, n);
        using var result = Tensor.Zeros(device, [2]);
        foreach (long chunk in new long[] { 1, 7, 64, 333, 999, 1000, 1001 })
        {
            device.Kernels.Reduce.Reduce(kind, x.View, result.View, index: 1, scale: 0.5f, chunkElements: chunk);
            Assert.Equal(expected * 0.5, result.ToArray()[1]);
        }
    }

    [Fact]
    public void ChunkedReductionOfNonIntegersIsBitwiseReproducibleAndMatchesTheReference()
    {
        var device = TestDevice.Cpu;
        var values = Reference.Random(5000, 6);
        using var x = Tensor.FromArray(device, values, values.Length);
        using var result = Tensor.Zeros(device, [1]);
        float Run(long chunk)
        {
            device.Kernels.Reduce.Reduce(ReductionKind.SumOfSquares, x.View, result.View, chunkElements: chunk);
            return result.Item();
        }
        double expected = values.Sum(v => (double)v * v);
        foreach (long chunk in new long[] { 13, 512, 4999 })
        {
            float first = Run(chunk);
            Assert.Equal(BitConverter.SingleToInt32Bits(first), BitConverter.SingleToInt32Bits(Run(chunk)));
            Assert.InRange(Math.Abs(first - expected) / expected, 0, 1e-6);
        }
    }

    [Fact]
    public void ChunkedAdamWIsBitwiseTheSameAsOneLaunch()
    {
        var device = TestDevice.Cpu;
        const int n = 1003;
        float[] Run(long chunk)
        {
            using var param = Tensor.FromArray(device, Reference.Random(n, 1), n);
            using var grad = Tensor.FromArray(device, Reference.Random(n, 2), n);
            using var m = Tensor.FromArray(device, Reference.Random(n, 3, 0.1), n);
            using var v = Tensor.FromArray(device, Reference.Random(n, 4, 0.1).Select(Math.Abs).ToArray(), n);
            using var scale = Tensor.FromArray(device, [0.7f], 1);
            var step = new AdamWStep
            {
                LearningRate = 1e-2f, Beta1 = 0.9f, Beta2 = 0.95f, Epsilon = 1e-8f, WeightDecay = 0.1f,
                BiasCorrection1 = 0.19f, BiasCorrection2 = 0.0975f,
            };
            device.Kernels.Optim.AdamW(param.View, grad.View, m.View, v.View, scale.View, step, chunk);
            return [.. param.ToArray(), .. m.ToArray(), .. v.ToArray()];
        }
        var whole = Run(Launch.MaxElements);
        Assert.NotEqual(Reference.Random(n, 1), whole.Take(n).ToArray());
        foreach (long chunk in new long[] { 1, 10, 500, 1002 }) Assert.Equal(whole, Run(chunk));
    }

    [Fact]
    public void ZeroFillClearsEveryChunk()
    {
        var device = TestDevice.Cpu;
        using var x = Tensor.FromArray(device, Reference.Random(300, 7), 300);
        Launch.ZeroFill(device.Runtime, x.View);
        Assert.All(x.ToArray(), v => Assert.Equal(0f, v));
    }

    /// <summary>
    /// A real reduction over more than 2^31 elements (8.6 GB of floats). Opt-in, because the machines the tests
    /// run on are often shared: set FLOWHN_LARGE_TESTS=1, and it still runs only with 12 GiB available.
    /// </summary>
    [LargeMemoryFact(12)]
    public void ReductionOverMoreThanTwoToTheThirtyOneElements()
    {
        var device = TestDevice.Cpu;
        long n = (1L << 31) + 4096;
        var block = device.Runtime.Allocator.AllocateExact(n);
        try
        {
            var view = block.View.SubView(0, n);
            Launch.ZeroFill(device.Runtime, view);
            // A few values, the largest past index 2^31: 32-bit indices that wrapped would miss them.
            long[] at = [3, (1L << 30) + 5, (1L << 31) - 1, (1L << 31) + 17, n - 1];
            float[] put = [1.5f, -2f, 3f, 7f, 0.25f];
            for (int i = 0; i < at.Length; i++) view.SubView(at[i], 1).CopyFromCPU(device.Runtime.CurrentStream.Native, [put[i]]);
            using var result = Tensor.Zeros(device, [3]);
            var reduce = device.Kernels.Reduce;
            reduce.Reduce(ReductionKind.Sum, view, result.View, 0);
            reduce.Reduce(ReductionKind.SumOfSquares, view, result.View, 1);
            reduce.Reduce(ReductionKind.Max, view, result.View, 2);
            Assert.Equal([put.Sum(), put.Sum(v => v * v), put.Max()], result.ToArray());
        }
        finally
        {
            device.Runtime.Allocator.Free(block);
            device.Runtime.Allocator.ReleaseCached();
        }
    }
}

/// <summary>A test that needs much host memory: skipped, with the reason, unless asked for and available.</summary>
public sealed class LargeMemoryFactAttribute : FactAttribute
{
    public LargeMemoryFactAttribute(double gib)
    {
        double available = AvailableGib();
        if (Environment.GetEnvironmentVariable("FLOWHN_LARGE_TESTS") != "1")
            Skip = $"needs {gib} GiB of memory: set FLOWHN_LARGE_TESTS=1 to run it";
        else if (available < gib)
            Skip = $"needs {gib} GiB of available memory, {available:0.#} GiB available";
    }

    /// <summary>MemAvailable from /proc/meminfo (Linux), else what the GC says the process may use.</summary>
    private static double AvailableGib()
    {
        const double gib = 1 << 30;
        const string path = "/proc/meminfo";
        if (File.Exists(path))
            foreach (var line in File.ReadLines(path))
                if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024 / gib;
        return GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / gib;
    }
}
