using System.CommandLine;
using FlowHN.Runtime;
using ILGPU.Runtime.Cuda;

namespace FlowHN.Cli.Commands;

/// <summary><c>flowhn info</c>: what device a run would use and which peak MFU is measured against.</summary>
public static class InfoCommand
{
    public static Command Create(CliConsole console)
    {
        var deviceOptions = new DeviceOptionSet();
        var command = new Command("info", "Show the device, its memory, the matrix-product backend and the peak FLOP/s used for MFU.");
        deviceOptions.AddTo(command);
        command.SetAction(result =>
        {
            using var device = DeviceOptionSet.Open(deviceOptions.Read(result), console);
            var o = console.Out;
            o.WriteLine($"device:       {device.Runtime.Describe()}");
            o.WriteLine($"memory:       {device.Runtime.MemoryBytes / (double)(1L << 30):0.##} GiB");
            o.WriteLine($"matmul:       {device.MatmulBackend}");
            if (device.MatmulFallbackReason is { Length: > 0 } reason) o.WriteLine($"              (cuBLAS not used: {reason})");
            o.WriteLine($"attention:    {device.AttentionPath}");
            // On CUDA: the cuBLAS the run uses. On the CPU: what a CUDA run would load from here (nothing is called).
            var cublas = device.Runtime.IsCuda ? CublasLibrary.Current : CublasLibrary.Load(CublasSearch.FromEnvironment());
            o.WriteLine($"cuBLAS:       {cublas.Describe()}{(device.Runtime.IsCuda ? "" : " (not used on the CPU accelerator)")}");
            if (device.Runtime.Accelerator is CudaAccelerator cuda)
                o.WriteLine($"PTX:          ILGPU targets {cuda.Architecture} with PTX ISA {cuda.InstructionSet} (driver API {cuda.DriverVersion})");
            o.WriteLine($"peak:         {device.Runtime.Peak}");
            o.WriteLine($"MFU uses:     {(device.MatmulUsesTf32 ? "tf32" : "fp32")} peak, {device.Runtime.Peak.For(device.MatmulUsesTf32) / 1e12:0.###} TFLOP/s");
            return 0;
        });
        return command;
    }
}
