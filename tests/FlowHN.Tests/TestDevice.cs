using FlowHN.Runtime;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace FlowHN.Tests;

/// <summary>
/// Shared CPU-accelerator devices: the default preset (warp 2, one warp per group) and a wider one
/// (warp 4, two warps per group, four threads per row in row kernels) so group-level code and shared-memory
/// reductions run too.
/// </summary>
public static class TestDevice
{
    private static readonly Lazy<ComputeDevice> cpu = new(() => ComputeDevice.Create(new DeviceOptions { Device = DeviceKind.Cpu }));
    private static readonly Lazy<ComputeDevice> wide = new(() => ComputeDevice.Create(new DeviceOptions
    {
        Device = DeviceKind.Cpu, CpuWarpSize = 4, CpuWarpsPerGroup = 2, CpuLanesPerRow = 4,
    }));

    public static ComputeDevice Cpu => cpu.Value;
    public static ComputeDevice Wide => wide.Value;

    public static IEnumerable<object[]> Both() => [["default"], ["wide"]];

    public static ComputeDevice Get(string name) => name == "wide" ? Wide : Cpu;
}
