using BenchmarkDotNet.Attributes;
using FlowHN.Autograd;
using FlowHN.Kernels;
using FlowHN.Tensors;

namespace FlowHN.Benchmarks;

/// <summary>
/// Causal flash-style attention with grouped KV heads at the 135M model's shape (batch 8, length 1024, 32 query
/// and 8 KV heads of dim 24) on CUDA, the tiny model's heads on the CPU accelerator. Model FLOPs as the library
/// counts them: 4 * headDim * heads * batch * visible (query, key) pairs forward, three times that for forward
/// plus backward.
/// </summary>
public class AttentionBenchmarks : DeviceBenchmark
{
    private AttentionShape shape;
    private Tensor? q, k, v, o, lse, dO, delta, dq, dk, dv, positions;

    /// <summary>batch x length x query heads x KV heads x head dim.</summary>
    public static IEnumerable<string> Shapes() => BenchmarkDevice.IsCuda ? ["8x1024x32x8x24"] : ["2x128x4x2x32"];

    public static IEnumerable<string> Passes() => ["forward", "forward+backward"];

    [ParamsSource(nameof(Shapes))]
    public string Shape { get; set; } = "2x128x4x2x32";

    [ParamsSource(nameof(Passes))]
    public string Pass { get; set; } = "forward";

    private bool Backward => Pass == "forward+backward";

    public override double Flops => CausalFlops(Dims(Shape), Backward);

    /// <summary>
    /// Model FLOPs of causal attention at dims batch x length x heads x kv heads x head dim: 4 * headDim * heads *
    /// batch per visible (query, key) pair forward, three times that with the backward.
    /// </summary>
    internal static double CausalFlops(int[] d, bool backward)
    {
        double visiblePairs = d[1] * (d[1] + 1.0) / 2, forward = 4.0 * d[4] * d[2] * d[0] * visiblePairs;
        return backward ? 3 * forward : forward;
    }

    protected override void Prepare()
    {
        int[] d = Dims(Shape);
        int batch = d[0], length = d[1], heads = d[2], kvHeads = d[3], headDim = d[4];
        shape = AttentionLauncher.Shape(batch, length, length, heads, kvHeads, headDim);
        q = RandomTensor([batch, length, heads, headDim]);
        k = RandomTensor([batch, length, kvHeads, headDim]);
        v = RandomTensor([batch, length, kvHeads, headDim]);
        dO = RandomTensor([batch, length, heads, headDim]);
        o = Tensor.Empty(Device, q.Shape);
        lse = Tensor.Empty(Device, [batch, heads, length]);
        delta = Tensor.Empty(Device, lse.Shape);
        dq = Tensor.Zeros(Device, q.Shape);
        dk = Tensor.Zeros(Device, k.Shape);
        dv = Tensor.Zeros(Device, v.Shape);
        positions = Ops.Positions(Device, length);
    }

    /// <summary>Attention (and its backward: dQ, then dK and dV), then wait for the device.</summary>
    [Benchmark]
    public void Attention()
    {
        var kernels = Device.Kernels.Attention;
        var p = positions!.IntView;
        var inputs = new AttentionInputs { Q = q!.View, K = k!.View, V = v!.View, QueryPositions = p, KeyPositions = p };
        kernels.Forward(shape, inputs, o!.View, lse!.View);
        if (Backward)
            kernels.Backward(shape, inputs, o.View, lse.View, dO!.View, delta!.View,
                new AttentionGradients { DQ = dq!.View, DK = dk!.View, DV = dv!.View });
        Device.Runtime.Synchronize();
    }
}
