using System.Linq.Expressions;
using System.Reflection;
using FlowHN.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Kernels;

/// <summary>
/// Base of a kernel family's launcher: loads (compiles) each kernel once when the family is created and
/// remembers the kernel methods, so tests can compile every kernel to PTX.
/// </summary>
internal abstract class KernelFamily
{
    private readonly List<MethodInfo> methods = new();
    private readonly IScratchMemory scratch;

    protected KernelFamily(ComputeDevice device, IScratchMemory scratch)
    {
        Device = device;
        this.scratch = scratch;
        DeviceGeometry = KernelGeometry.Of(device);
    }

    protected ComputeDevice Device { get; }

    /// <summary>The device traits launch shapes depend on (fixed for the device's lifetime).</summary>
    protected KernelGeometry DeviceGeometry { get; }

    /// <summary>The stream launches go to (the device's current stream).</summary>
    protected AcceleratorStream Stream => Device.CurrentStream.Native;

    protected LaunchCounters Counters => Device.Counters;

    public IReadOnlyList<MethodInfo> KernelMethods => methods;

    /// <summary>Scratch memory for one launch sequence, from and back to the policy the family was given.</summary>
    protected ScratchBlock Scratch(long elements) => new(scratch, elements);

    protected readonly struct ScratchBlock : IDisposable
    {
        private readonly IScratchMemory scratch;
        private readonly DeviceBlock block;

        public ScratchBlock(IScratchMemory scratch, long elements)
        {
            this.scratch = scratch;
            block = scratch.Rent(elements);
        }

        public ArrayView<float> View => block.View;

        public void Dispose() => scratch.Return(block);
    }

    /// <summary>
    /// Records a kernel method and loads it, or on a shape-only device (see ComputeDevice.IsMeta) returns a launch
    /// that does nothing: launchers still count what they launch, and nothing is compiled. Kernels with more
    /// parameters than the overloads below take are loaded through this directly.
    /// </summary>
    protected TLaunch Loaded<TLaunch>(Delegate kernel, Func<TLaunch> load) where TLaunch : Delegate
    {
        methods.Add(kernel.Method);
        return Device.IsMeta ? NoLaunch<TLaunch>.Instance : load();
    }

    /// <summary>
    /// A kernel only the CPU accelerator runs: not loaded on CUDA and not recorded (so not in the PTX report),
    /// and on a shape-only device a launch that does nothing, as <see cref="Loaded"/> gives.
    /// </summary>
    protected TLaunch? CpuOnly<TLaunch>(Func<TLaunch> load) where TLaunch : Delegate =>
        Device.IsCuda ? null : Device.IsMeta ? NoLaunch<TLaunch>.Instance : load();

    /// <summary>A delegate of any launch signature that ignores its arguments.</summary>
    private static class NoLaunch<TLaunch> where TLaunch : Delegate
    {
        public static readonly TLaunch Instance = Expression.Lambda<TLaunch>(Expression.Empty(),
            typeof(TLaunch).GetMethod("Invoke")!.GetParameters().Select(p => Expression.Parameter(p.ParameterType))).Compile();
    }

    protected Action<AcceleratorStream, KernelConfig, T1, T2> Load<T1, T2>(Action<T1, T2> kernel)
        where T1 : struct where T2 : struct => Loaded(kernel, () => Device.Accelerator.LoadKernel(kernel));

    protected Action<AcceleratorStream, KernelConfig, T1, T2, T3> Load<T1, T2, T3>(Action<T1, T2, T3> kernel)
        where T1 : struct where T2 : struct where T3 : struct => Loaded(kernel, () => Device.Accelerator.LoadKernel(kernel));

    protected Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4> Load<T1, T2, T3, T4>(Action<T1, T2, T3, T4> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct =>
        Loaded(kernel, () => Device.Accelerator.LoadKernel(kernel));

    protected Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5> Load<T1, T2, T3, T4, T5>(
        Action<T1, T2, T3, T4, T5> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct =>
        Loaded(kernel, () => Device.Accelerator.LoadKernel(kernel));

    protected Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5, T6> Load<T1, T2, T3, T4, T5, T6>(
        Action<T1, T2, T3, T4, T5, T6> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct =>
        Loaded(kernel, () => Device.Accelerator.LoadKernel(kernel));

    protected Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5, T6, T7> Load<T1, T2, T3, T4, T5, T6, T7>(
        Action<T1, T2, T3, T4, T5, T6, T7> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct
        where T7 : struct => Loaded(kernel, () => Device.Accelerator.LoadKernel(kernel));

    protected Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8> Load<T1, T2, T3, T4, T5, T6, T7, T8>(
        Action<T1, T2, T3, T4, T5, T6, T7, T8> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct
        where T7 : struct where T8 : struct => Loaded(kernel, () => Device.Accelerator.LoadKernel(kernel));
}
