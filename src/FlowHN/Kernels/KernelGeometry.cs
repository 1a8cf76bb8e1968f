using FlowHN.Runtime;

namespace FlowHN.Kernels;

/// <summary>
/// The device traits that decide the scan's and the conv's launch shapes, and with them their scratch sizes.
/// Kept apart from the device: the launch shapes follow from these traits alone.
/// </summary>
/// <param name="CpuThreads">Threads the CPU accelerator runs at once (multiprocessors x threads per group).</param>
public sealed record KernelGeometry(bool IsCuda, int WarpSize, int CpuLanesPerRow, int CpuThreads)
{
    /// <summary>A CUDA GPU's traits (warps of 32): GPU launch shapes, worked out on any machine.</summary>
    public static KernelGeometry Cuda { get; } = new(true, 32, 1, 0);

    public static KernelGeometry Of(ComputeDevice device) => new(device.IsCuda, device.Accelerator.WarpSize,
        device.Options.CpuLanesPerRow, device.Accelerator.NumMultiprocessors * device.Accelerator.MaxNumThreadsPerGroup);
}
