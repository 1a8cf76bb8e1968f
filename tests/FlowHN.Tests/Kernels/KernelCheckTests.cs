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

    public static IEnumerable<object[]> Names() => KernelChecks.Names.Select(name => new object[] { name });

    [Theory]
    [MemberData(nameof(Names))]
    public void CheckFailsWhenItsKernelIsOffByOnePartInAThousand(string check)
    {
        // Every kernel result scaled by 1.001 before the comparison: the check must report that 0.1% error (so
        // it really compares the kernel with its reference, and its tolerance is tighter than that) and fail.
        KernelChecks.ResultSkew = 1e-3;
        try
        {
            var result = KernelChecks.Run(TestDevice.Cpu, check);
            Assert.Null(result.Failure);
            Assert.InRange(result.RelativeError, 0.9e-3, 1.1e-3);
            Assert.False(result.Passed, $"{check} passed a result off by 0.1%");
        }
        finally
        {
            KernelChecks.ResultSkew = 0;
        }
    }
}
