using System.Reflection;
using System.Text.RegularExpressions;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace FlowHN.Diagnostics;

/// <summary>One kernel's PTX: the C# method, the entry name profilers show, the assembly text.</summary>
public sealed record KernelPtxEntry(string Method, string EntryName, string Ptx);

/// <summary>
/// Compiles kernels to PTX without a GPU (ILGPU's PTX backend needs no driver), as a CUDA run would: the tests
/// use it to catch CUDA-only compile errors, and <c>flowhn ptx-report</c> feeds the result to ptxas.
/// </summary>
public static partial class KernelPtx
{
    /// <summary>ILGPU emits <c>.target sm_80</c> at most for Hopper; ISA 8.8 is what recent drivers accept.</summary>
    public static IReadOnlyList<KernelPtxEntry> Compile(IEnumerable<MethodInfo> kernels,
        CudaArchitecture? architecture = null, CudaInstructionSet? instructionSet = null)
    {
        using var context = Context.Create(builder => builder.Optimize(OptimizationLevel.O2).EnableAlgorithms());
        using var backend = new PTXBackend(context, architecture ?? CudaArchitecture.SM_90, instructionSet ?? CudaInstructionSet.ISA_88, null!);
        var result = new List<KernelPtxEntry>();
        foreach (var method in kernels)
        {
            var entry = EntryPointDescription.FromExplicitlyGroupedKernel(method);
            var ptx = ((PTXCompiledKernel)backend.Compile(entry, KernelSpecialization.Empty)).PTXAssembly;
            result.Add(new KernelPtxEntry($"{method.DeclaringType?.Name}.{method.Name}", EntryNameOf(ptx), ptx));
        }
        return result;
    }

    /// <summary>The name after <c>.entry</c>: what nsys and ncu list for this kernel.</summary>
    public static string EntryNameOf(string ptx) =>
        EntryPattern().Match(ptx) is { Success: true } m ? m.Groups[1].Value : throw new FormatException("PTX without an .entry");

    [GeneratedRegex(@"\.entry\s+([A-Za-z_$][\w$]*)")]
    private static partial Regex EntryPattern();
}
