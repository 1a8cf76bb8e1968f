using BenchmarkDotNet.Attributes;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Benchmarks;

/// <summary>
/// Matrix products at the model's shapes (tokens x out x in for a 135M-size layer) on both backends of the device:
/// cuBLAS and the ILGPU tiled kernel on CUDA, host SIMD and the ILGPU tiled kernel on the CPU accelerator, where
/// the shapes are scaled down so a run takes seconds.
/// </summary>
public class GemmBenchmarks : DeviceBenchmark
{
    private Tensor? a, b, c;

    public static IEnumerable<string> Shapes() => BenchmarkDevice.IsCuda
        ? ["4096x768x768", "4096x2048x768", "4096x768x2048"]
        : ["256x256x256", "512x384x384"];

    public static IEnumerable<string> Backends() => BenchmarkDevice.IsCuda ? ["cublas", "ilgpu"] : ["host", "ilgpu"];

    /// <summary>M x N x K.</summary>
    [ParamsSource(nameof(Shapes))]
    public string Shape { get; set; } = "256x256x256";

    [ParamsSource(nameof(Backends))]
    public string Backend { get; set; } = "ilgpu";

    public override double Flops => Dims(Shape).Aggregate(2.0, (product, size) => product * size);

    protected override GemmBackendKind Gemm => DeviceOptions.ParseGemm(Backend);

    protected override void Prepare()
    {
        int m = Dims(Shape)[0], n = Dims(Shape)[1], k = Dims(Shape)[2];
        a = RandomTensor([m, k]);
        b = RandomTensor([k, n]);
        c = Tensor.Empty(Device, [m, n]);
    }

    /// <summary>C = A B, then wait for the device so the time covers the kernel.</summary>
    [Benchmark]
    public void MatMul()
    {
        Device.Kernels.Gemm.MatMul(a!, b!, c!);
        Device.Runtime.Synchronize();
    }
}
