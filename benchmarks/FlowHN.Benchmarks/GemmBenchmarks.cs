using BenchmarkDotNet.Attributes;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Benchmarks;

/// <summary>
/// Matrix products at the model's shapes (tokens x out x in for a 135M-size layer). On the CPU accelerator
/// the shapes are scaled down so a run takes seconds.
/// </summary>
public class GemmBenchmarks : IWorkload
{
    private ComputeDevice? device;
    private Tensor? a, b, c;

    public static IEnumerable<string> Shapes() => BenchmarkDevice.IsCuda
        ? ["4096x768x768", "4096x2048x768", "4096x768x2048"]
        : ["256x256x256", "512x384x384"];

    public static IEnumerable<string> Backends() => BenchmarkDevice.IsCuda ? ["cublas", "ilgpu"] : ["ilgpu"];

    /// <summary>M x N x K.</summary>
    [ParamsSource(nameof(Shapes))]
    public string Shape { get; set; } = "256x256x256";

    [ParamsSource(nameof(Backends))]
    public string Backend { get; set; } = "ilgpu";

    private int[] Dims => Shape.Split('x').Select(int.Parse).ToArray();

    public double Flops => 2.0 * Dims[0] * Dims[1] * Dims[2];
    public double Bytes => 0;
    public string DeviceName => device?.Name ?? "";

    [GlobalSetup]
    public void Setup()
    {
        device = ComputeDevice.Create(BenchmarkDevice.Options(DeviceOptions.ParseGemm(Backend)));
        int m = Dims[0], n = Dims[1], k = Dims[2];
        var random = new Random(1);
        a = Tensor.FromArray(device, Enumerable.Range(0, m * k).Select(_ => (float)random.NextDouble()).ToArray(), m, k);
        b = Tensor.FromArray(device, Enumerable.Range(0, k * n).Select(_ => (float)random.NextDouble()).ToArray(), k, n);
        c = Tensor.Empty(device, [m, n]);
        Console.WriteLine($"// device: {device.Describe()}, matmul: {device.Kernels.Gemm.BackendName}, peak {device.Peak}");
    }

    /// <summary>C = A B, then wait for the device so the time covers the kernel.</summary>
    [Benchmark]
    public void MatMul()
    {
        device!.Kernels.Gemm.MatMul(a!, b!, c!);
        device.Synchronize();
    }

    [GlobalCleanup]
    public void Cleanup() => device?.Dispose();
}
