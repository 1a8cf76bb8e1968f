using BenchmarkDotNet.Attributes;
using FlowHN.Kernels;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Benchmarks;

/// <summary>
/// The Mamba selective scan at the 135M model's shape (batch 8, length 1024, d_inner 1536, d_state 16) on CUDA,
/// smaller shapes on the CPU accelerator. Effective bandwidth counts what each kernel pass must move at least:
/// the forward reads u, delta, z, B, C and writes y; the backward reads u, delta, z, dy, B, C and writes the
/// gradients of u, delta, z, B and C (per-channel parameters and the saved chunk states are negligible).
/// </summary>
public class SelectiveScanBenchmarks : IWorkload
{
    private ComputeDevice? device;
    private SelectiveScanShape shape;
    private SelectiveScanInputs inputs;
    private Tensor? y, dy, boundaries;
    private Tensor[] grads = [];

    /// <summary>batch x length x d_inner x d_state.</summary>
    public static IEnumerable<string> Shapes() => BenchmarkDevice.IsCuda
        ? ["8x1024x1536x16", "2x1024x1536x16"]
        : ["2x256x256x16", "1x128x128x16"];

    public static IEnumerable<string> Passes() => ["forward", "forward+backward"];

    [ParamsSource(nameof(Shapes))]
    public string Shape { get; set; } = "2x256x256x16";

    [ParamsSource(nameof(Passes))]
    public string Pass { get; set; } = "forward";

    private int[] Dims => Shape.Split('x').Select(int.Parse).ToArray();

    private bool Backward => Pass == "forward+backward";

    public double Flops => 0;

    public double Bytes
    {
        get
        {
            double tokens = (double)Dims[0] * Dims[1], perChannel = tokens * Dims[2], perState = tokens * Dims[3];
            double forward = 4 * perChannel + 2 * perState, backward = 7 * perChannel + 4 * perState;
            return sizeof(float) * (Backward ? forward + backward : forward);
        }
    }

    public string DeviceName => device?.Name ?? "";

    [GlobalSetup]
    public void Setup()
    {
        device = ComputeDevice.Create(BenchmarkDevice.Options());
        int batch = Dims[0], length = Dims[1], channels = Dims[2], states = Dims[3];
        var kernels = device.Kernels.SelectiveScan;
        shape = kernels.Shape(batch, length, channels, states, hasInitial: false);
        var random = new Random(1);
        Tensor Random(int n, double scale, double shift) => Tensor.FromArray(device,
            Enumerable.Range(0, n).Select(_ => (float)(shift + scale * (random.NextDouble() - 0.5))).ToArray(), n);
        int tokens = batch * length * channels, rows = batch * length * states;
        inputs = new SelectiveScanInputs
        {
            U = Random(tokens, 2, 0).View, Delta = Random(tokens, 2, 0).View, DeltaBias = Random(channels, 4, -2).View,
            ALog = Random(channels * states, 1, 1.5).View, B = Random(rows, 2, 0).View, C = Random(rows, 2, 0).View,
            DSkip = Random(channels, 2, 0).View, Z = Random(tokens, 2, 0).View,
        };
        y = Tensor.Empty(device, [tokens]);
        dy = Random(tokens, 2, 0);
        boundaries = Tensor.Empty(device, [(int)SelectiveScanLauncher.BoundaryLength(shape)]);
        grads = new[] { tokens, tokens, channels, channels * states, rows, rows, channels, tokens }
            .Select(n => Tensor.Zeros(device, [n])).ToArray();
        Console.WriteLine($"// device: {device.Describe()}, chunk {shape.Chunk}, lanes {shape.Lanes}, " +
                          $"channels per thread {shape.ChannelsPerThread}");
    }

    /// <summary>One scan (and its backward), then wait for the device so the time covers the kernels.</summary>
    [Benchmark]
    public void Scan()
    {
        var kernels = device!.Kernels.SelectiveScan;
        kernels.Forward(shape, inputs, y!.View, Backward ? boundaries!.View : default, default);
        if (Backward)
            kernels.Backward(shape, inputs, dy!.View, boundaries!.View, new SelectiveScanGradients
            {
                DU = grads[0].View, DDelta = grads[1].View, DDeltaBias = grads[2].View, DALog = grads[3].View,
                DB = grads[4].View, DC = grads[5].View, DSkip = grads[6].View, DZ = grads[7].View,
            });
        device.Synchronize();
    }

    [GlobalCleanup]
    public void Cleanup() => device?.Dispose();
}
