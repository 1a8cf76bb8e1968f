using FlowHN.Diagnostics;
using ILGPU.Runtime.Cuda;

namespace FlowHN.Tests.Kernels;

/// <summary>The ptxas gate's parsing and rules (CI runs the gate itself with `flowhn ptx-report`).</summary>
public class PtxasReportTests
{
    private const string ScanOutput = """
        ptxas info    : 0 bytes gmem
        ptxas info    : Compiling entry function 'Kernel_SelectiveScanForward' for 'sm_90'
        ptxas info    : Function properties for Kernel_SelectiveScanForward
            256 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
        ptxas info    : Used 36 registers, 256 bytes cumulative stack size, 1024 bytes smem, 456 bytes cmem[0]
        """;

    [Fact]
    public void ReadsRegistersSharedLocalAndSpills()
    {
        var s = PtxasReport.ParseVerbose("SelectiveScanKernels.SelectiveScanForward", "Kernel_SelectiveScanForward", ScanOutput);
        Assert.Equal((36, 1024, 256, 0, 0, 0), (s.Registers, s.SharedBytes, s.LocalBytes, s.SpillStoreBytes, s.SpillLoadBytes, s.LocalBudgetBytes));
        Assert.False(s.Spills);
        Assert.True(s.OverBudget); // 256 B of local memory where none is allowed
        var none = PtxasReport.ParseVerbose("SelectiveScanKernels.SelectiveScanForward", "Kernel_SelectiveScanForward",
            ScanOutput.Replace("256 bytes stack frame", "0 bytes stack frame"));
        Assert.True(none.Passed);
    }

    [Fact]
    public void ASpillFails()
    {
        string spilling = ScanOutput.Replace("Kernel_SelectiveScanForward", "Kernel_AttentionForward")
            .Replace("256 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads", "0 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads");
        var attention = PtxasReport.ParseVerbose("AttentionKernels.AttentionForward", "Kernel_AttentionForward", spilling);
        Assert.True(attention.Spills);
        Assert.False(attention.OverBudget);
        Assert.False(attention.Passed);
    }

    [Fact]
    public void OutputAboutAnotherKernelIsRejected() =>
        Assert.Throws<FormatException>(() => PtxasReport.ParseVerbose("A.B", "Kernel_B", ScanOutput));

    [Fact]
    public void EveryBudgetNamesAKernelThatExists()
    {
        // A renamed kernel must not silently lose its budget (it would then fail the gate, but say why here).
        var names = TestDevice.Cpu.Kernels.AllKernelMethods.Select(m => m.Name).ToHashSet();
        Assert.All(PtxasReport.LocalBudgets.Keys, k => Assert.Contains(k, names));
    }

    [Theory]
    [InlineData("Cuda compilation tools, release 11.8, V11.8.89", 7, 8)]
    [InlineData("Cuda compilation tools, release 12.4, V12.4.131", 8, 4)]
    [InlineData("Cuda compilation tools, release 12.6, V12.6.85", 8, 5)]
    [InlineData("Cuda compilation tools, release 13.0, V13.0.48", 8, 8)]
    public void PicksAnInstructionSetThePtxasAccepts(string version, int major, int minor) =>
        Assert.Equal(new CudaInstructionSet(major, minor), PtxasReport.InstructionSetFor(PtxasReport.ParseRelease(version)));
}
