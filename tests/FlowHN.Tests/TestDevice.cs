using FlowHN.Autograd;
using FlowHN.Runtime;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace FlowHN.Tests;

/// <summary>
/// Shared CPU-accelerator devices: the default preset (warp 2, one warp per group), a wider one (warp 4, two
/// warps per group, four threads per row in row kernels) so group-level code and shared-memory reductions run
/// too, and one with a GPU's geometry for the kernel checks; the first two also with the gemm attention path
/// ("gemm", "gemm-wide"; on the GPU geometry tests call the gemm launcher directly, as the kernel checks do). Each
/// comes with a shared session; a test that changes a session's settings makes a session of its own on the same
/// device (<c>new Session(TestDevice.Cpu.Runtime)</c>).
/// </summary>
public static class TestDevice
{
    private static readonly Lazy<Session> cpu = new(() => Session.Create(new DeviceOptions { Device = DeviceKind.Cpu }));
    private static readonly Lazy<Session> wide = new(() => Session.Create(new DeviceOptions
    {
        Device = DeviceKind.Cpu, CpuWarpSize = 4, CpuWarpsPerGroup = 2, CpuLanesPerRow = 4,
    }));
    private static readonly Lazy<Session> warp32 = new(() => Session.Create(new DeviceOptions
    {
        Device = DeviceKind.Cpu, CpuWarpSize = 32, CpuWarpsPerGroup = 4, CpuLanesPerRow = 32,
    }));

    // The gemm attention path (--attention gemm) on the default and wide presets, with query blocks
    // of a few rows so every test shape has several blocks and a ragged last one.
    private static readonly Lazy<Session> gemm = new(() => Session.Create(new DeviceOptions
    {
        Device = DeviceKind.Cpu, Attention = AttentionPathKind.Gemm, AttentionQueryBlock = 4,
    }));
    private static readonly Lazy<Session> gemmWide = new(() => Session.Create(new DeviceOptions
    {
        Device = DeviceKind.Cpu, CpuWarpSize = 4, CpuWarpsPerGroup = 2, CpuLanesPerRow = 4,
        Attention = AttentionPathKind.Gemm, AttentionQueryBlock = 3,
    }));

    public static Session Cpu => cpu.Value;
    public static Session Wide => wide.Value;

    public static IEnumerable<object[]> Both() => [["default"], ["wide"]];

    /// <summary>A GPU's geometry on the CPU: warps of 32, groups of 128, 32 threads per row (slow; kernel checks only).</summary>
    public static Session Warp32 => warp32.Value;

    public static Session Get(string name) => name switch
    {
        "wide" => Wide,
        "warp32" => Warp32,
        "gemm" => gemm.Value,
        "gemm-wide" => gemmWide.Value,
        _ => Cpu,
    };
}
