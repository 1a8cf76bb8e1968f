using BenchmarkDotNet.Attributes;
using FlowHN.Autograd;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Benchmarks;

/// <summary>
/// The two attention paths side by side through <see cref="Ops.Attention"/> (what models call): the flash kernels
/// and the gemm path (query blocks of batched matrix products: cuBLAS on CUDA, host SIMD on the CPU accelerator).
/// Causal, grouped KV heads; the 135M model's attention shape on CUDA, the tiny model's heads on the CPU. Model
/// FLOPs are the visible pairs for both paths (4 * headDim * heads * batch * pairs forward, three times that with
/// the backward), so the Throughput column compares them on the same work.
/// </summary>
public class AttentionPathBenchmarks : DeviceBenchmark
{
    private Tensor? q, k, v, dO, positions;

    /// <summary>batch x length x query heads x KV heads x head dim.</summary>
    public static IEnumerable<string> Shapes() => BenchmarkDevice.IsCuda ? ["8x1024x32x8x24"] : ["2x256x4x2x32"];

    public static IEnumerable<string> Passes() => ["forward", "forward+backward"];

    public static IEnumerable<string> Paths() => ["flash", "gemm"];

    [ParamsSource(nameof(Shapes))]
    public string Shape { get; set; } = "2x256x4x2x32";

    [ParamsSource(nameof(Passes))]
    public string Pass { get; set; } = "forward";

    [ParamsSource(nameof(Paths))]
    public string Path { get; set; } = "flash";

    private bool Backward => Pass == "forward+backward";

    protected override DeviceOptions Options => base.Options with { Attention = DeviceOptions.ParseAttention(Path) };

    public override double Flops => AttentionBenchmarks.CausalFlops(Dims(Shape), Backward);

    protected override void Prepare()
    {
        int[] d = Dims(Shape);
        int batch = d[0], length = d[1], heads = d[2], kvHeads = d[3], headDim = d[4];
        q = RandomTensor([batch, length, heads, headDim]);
        k = RandomTensor([batch, length, kvHeads, headDim]);
        v = RandomTensor([batch, length, kvHeads, headDim]);
        dO = RandomTensor([batch, length, heads, headDim]);
        foreach (var t in new[] { q, k, v }) t.RequiresGrad = true;
        positions = Ops.Positions(Device, length);
        Console.WriteLine($"// {Path}: attention {Device.AttentionPath}");
    }

    /// <summary>Attention (and its backward into fresh gradients), then wait for the device.</summary>
    [Benchmark]
    public void Attention()
    {
        using (Device.BeginScope())
        {
            if (Backward)
            {
                var o = Ops.Attention(q!, k!, v!, positions!, positions!);
                Device.Tape.Backward(o, dO!);
            }
            else
            {
                using var noGrad = new NoGradScope(Device);
                Ops.Attention(q!, k!, v!, positions!, positions!);
            }
        }
        Device.Runtime.Synchronize();
        if (Backward)
            foreach (var t in new[] { q!, k!, v! }) t.Grad = null;
    }
}
