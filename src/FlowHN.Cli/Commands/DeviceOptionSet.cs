using System.CommandLine;
using FlowHN.Autograd;
using FlowHN.Runtime;

namespace FlowHN.Cli.Commands;

/// <summary>The options every device-using command shares.</summary>
public sealed class DeviceOptionSet
{
    public Option<string> Device { get; } = new("--device")
    {
        Description = "Where to run: auto (CUDA when present, else CPU), cuda, or cpu.",
        DefaultValueFactory = _ => "auto",
    };

    public Option<string> Gemm { get; } = new("--gemm")
    {
        Description = "Matrix-product backend: auto (cuBLAS on CUDA when found, host SIMD on the CPU accelerator), ilgpu (the ILGPU tiled kernel), cublas, or host.",
        DefaultValueFactory = _ => "auto",
    };

    public Option<string> Attention { get; } = new("--attention")
    {
        Description = "Attention path: auto (gemm on CUDA with cuBLAS, flash otherwise), flash (the flash kernels), or gemm (query blocks of batched matrix products; also runs on the CPU accelerator).",
        DefaultValueFactory = _ => "auto",
    };

    public Option<bool> Tf32 { get; } = new("--tf32")
    {
        Description = "Use TF32 tensor cores for cuBLAS matrix products (faster, ~1e-3 relative error; MFU then uses the TF32 peak).",
    };

    public Option<double?> PeakTflops { get; } = new("--peak-tflops")
    {
        Description = "Override the device's peak TFLOP/s used for MFU (default: the built-in table by GPU name).",
    };

    public Option<double> MemoryLimit { get; } = new("--memory-limit")
    {
        Description = "Most device memory to use, in GiB (0 = all there is).",
        DefaultValueFactory = _ => 0,
    };

    public Option<int> CpuThreads { get; } = new("--cpu-threads")
    {
        Description = "CPU accelerator: worker threads in all (0 = one per core; a multiple of 2, the threads of one group).",
        DefaultValueFactory = _ => 0,
    };

    public void AddTo(Command command)
    {
        CliOption.Check(PeakTflops, v => v is null || CliOption.Positive(v.Value), "a positive number of TFLOP/s");
        CliOption.Check(MemoryLimit, CliOption.NonNegative, "0 (all) or a positive number of GiB");
        CliOption.Check(CpuThreads, CliOption.NonNegative, "0 (one per core) or a positive thread count");
        command.Options.Add(Device);
        command.Options.Add(Gemm);
        command.Options.Add(Attention);
        command.Options.Add(Tf32);
        command.Options.Add(PeakTflops);
        command.Options.Add(MemoryLimit);
        command.Options.Add(CpuThreads);
    }

    private static int warned;

    /// <summary>
    /// Creates the device a command runs on. On CUDA without cuBLAS it says so on stderr, once per process, before
    /// any work: a silent fallback would make every number 3-5x slower without telling anyone why.
    /// </summary>
    public static Session Open(DeviceOptions options, CliConsole console)
    {
        var device = Session.Create(options);
        if (device.Runtime.IsCuda && device.MatmulWarning is { } warning && Interlocked.Exchange(ref warned, 1) == 0)
            console.Error.WriteLine($"warning: {warning}");
        return device;
    }

    public DeviceOptions Read(ParseResult result) => new()
    {
        Device = DeviceOptions.ParseDevice(result.GetValue(Device)!),
        Gemm = DeviceOptions.ParseGemm(result.GetValue(Gemm)!),
        Attention = DeviceOptions.ParseAttention(result.GetValue(Attention)!),
        Tf32 = result.GetValue(Tf32),
        PeakTflops = result.GetValue(PeakTflops),
        MemoryLimitGiB = result.GetValue(MemoryLimit),
        CpuThreads = result.GetValue(CpuThreads),
    };
}
