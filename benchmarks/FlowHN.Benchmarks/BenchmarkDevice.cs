using FlowHN.Autograd;
using FlowHN.Runtime;

namespace FlowHN.Benchmarks;

/// <summary>Which device the benchmarks run on: CUDA when present, else the CPU accelerator with small shapes.</summary>
public static class BenchmarkDevice
{
    private const string Variable = "FLOWHN_BENCH_DEVICE";

    private static readonly Lazy<bool> Cuda = new(() =>
    {
        using var probe = Session.Create(Options(GemmBackendKind.Ilgpu));
        return probe.Runtime.IsCuda;
    });

    /// <summary>Removes <c>--device X</c> from the arguments and remembers X for the benchmark processes.</summary>
    public static string[] TakeDeviceArgument(string[] args)
    {
        var rest = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--device" && i + 1 < args.Length) Environment.SetEnvironmentVariable(Variable, args[++i]);
            else rest.Add(args[i]);
        }
        return rest.ToArray();
    }

    public static DeviceOptions Options(GemmBackendKind gemm = GemmBackendKind.Auto) => new()
    {
        Device = DeviceOptions.ParseDevice(Environment.GetEnvironmentVariable(Variable) ?? "auto"),
        Gemm = gemm,
    };

    /// <summary>
    /// Whether CUDA will be used, which decides the benchmark shapes before any benchmark's device is created.
    /// Probed once per process: every class asks for its parameter values.
    /// </summary>
    public static bool IsCuda => Cuda.Value;
}
