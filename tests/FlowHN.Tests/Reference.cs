using MathNet.Numerics.Distributions;

namespace FlowHN.Tests;

/// <summary>Random inputs and float64 comparisons shared by the tests.</summary>
public static class Reference
{
    public static float[] Random(int n, int seed, double scale = 1.0) =>
        Normal.Samples(new Random(seed), 0, scale).Take(n).Select(x => (float)x).ToArray();

    public static int[] RandomInts(int n, int maxExclusive, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => random.Next(maxExclusive)).ToArray();
    }

    /// <summary>||actual - expected|| / ||expected||, in float64.</summary>
    public static double RelativeError(IReadOnlyList<float> actual, IReadOnlyList<double> expected)
    {
        Assert.Equal(expected.Count, actual.Count);
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Count; i++)
        {
            diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
            norm += expected[i] * expected[i];
        }
        return Math.Sqrt(diff) / Math.Max(Math.Sqrt(norm), 1e-30);
    }

    public static void AssertClose(IReadOnlyList<float> actual, IReadOnlyList<double> expected, double tolerance)
    {
        foreach (var value in actual) Assert.True(float.IsFinite(value), "output has a non-finite value");
        double error = RelativeError(actual, expected);
        Assert.True(error < tolerance, $"relative error {error:E3} exceeds {tolerance:E1}");
    }

    public static double[] ToDouble(float[] x) => x.Select(v => (double)v).ToArray();
}
