using FlowHN.Diagnostics;

namespace FlowHN.Tests.Kernels;

/// <summary>
/// Compiles every kernel to PTX for sm_90 without a GPU, so CUDA-only compile errors (unsupported intrinsics,
/// managed types in kernels) show up on any machine, and checks the names profilers will show.
/// </summary>
public class PtxCompileTests
{
    [Fact]
    public void EveryKernelCompilesToPtxForSm90WithADistinctEntryName()
    {
        var methods = TestDevice.Cpu.Kernels.AllKernelMethods.ToList();
        Assert.True(methods.Count >= 20, $"only {methods.Count} kernels registered");
        var kernels = KernelPtx.Compile(methods);
        foreach (var k in kernels)
        {
            Assert.Contains(".entry", k.Ptx);
            Assert.Contains(".target sm_", k.Ptx);
        }
        // nsys and ncu list kernels by their entry name: two kernels with one name cannot be told apart.
        var repeated = kernels.GroupBy(k => k.EntryName).Where(g => g.Count() > 1)
            .Select(g => $"{g.Key}: {string.Join(", ", g.Select(k => k.Method))}").ToList();
        Assert.True(repeated.Count == 0, "kernels sharing an entry name: " + string.Join("; ", repeated));
    }

    [Fact]
    public void LoadedKernelMethodNamesAreDistinct()
    {
        // The entry name is built from the method name alone, so method names must be unique across families.
        var names = TestDevice.Cpu.Kernels.AllKernelMethods.Select(m => m.Name).ToList();
        Assert.Equal(names.Count, names.Distinct().Count());
        Assert.Contains("AttentionForward", names);
        Assert.Contains("SelectiveScanForwardLanes", names);
    }

    [Fact]
    public void EntryNameIsReadFromThePtx() =>
        Assert.Equal("Kernel_AttentionForward", KernelPtx.EntryNameOf(".visible .entry Kernel_AttentionForward(\n .param .u64 a"));
}
