using FlowHN.Runtime;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace FlowHN.Tests.Kernels;

/// <summary>
/// Compiles every kernel to PTX for sm_90 without a GPU, so CUDA-only compile errors (unsupported intrinsics,
/// managed types in kernels) show up on any machine.
/// </summary>
public class PtxCompileTests
{
    [Fact]
    public void EveryKernelCompilesToPtxForSm90()
    {
        var methods = TestDevice.Cpu.Kernels.AllKernelMethods.ToList();
        Assert.True(methods.Count >= 20, $"only {methods.Count} kernels registered");
        using var context = Context.Create(builder => builder.Optimize(OptimizationLevel.O2).EnableAlgorithms());
        using var backend = new PTXBackend(context, CudaArchitecture.SM_90, CudaInstructionSet.ISA_88, null!);
        var failures = new List<string>();
        foreach (var method in methods)
        {
            try
            {
                var entry = EntryPointDescription.FromExplicitlyGroupedKernel(method);
                var compiled = backend.Compile(entry, KernelSpecialization.Empty);
                var ptx = ((PTXCompiledKernel)compiled).PTXAssembly;
                Assert.Contains(".entry", ptx);
                Assert.Contains(".target sm_", ptx);
            }
            catch (Exception e)
            {
                failures.Add($"{method.DeclaringType?.Name}.{method.Name}: {e.Message}");
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }
}
