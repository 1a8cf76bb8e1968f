using FlowHN.Diagnostics;

namespace FlowHN.Tests.Kernels;

/// <summary>
/// Every kernel against its float64 reference, on both CPU presets and on the CPU with a GPU's geometry (warps of
/// 32, groups of 128, 32 threads per row), which exercises the sizes and lane counts CUDA launches use.
/// </summary>
public class KernelCheckTests
{
    public static IEnumerable<object[]> Cases() =>
        from name in KernelChecks.Names
        from device in new[] { "default", "wide", "warp32" }
        select new object[] { name, device };

    [Theory]
    [MemberData(nameof(Cases))]
    public void KernelMatchesFloat64Reference(string check, string device)
    {
        var result = KernelChecks.Run(TestDevice.Get(device), check);
        Assert.True(result.Passed, $"{check}: {result.Failure ?? $"relative error {result.RelativeError:E3} >= {result.Tolerance:E1}"}");
    }

    [Fact]
    public void ChecksDetectAWrongResult()
    {
        // A check must be able to fail: a reference off by a tiny relative amount is caught.
        double error = HostReference.RelativeError([1.0001f, 2f], [1.0, 2.0]);
        Assert.True(error > KernelChecks.ElementwiseTolerance);
    }
}
