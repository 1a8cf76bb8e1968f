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
/// <para>
/// Kernel: <c>lanes</c> is the lanes-over-states scan (a GPU's only one), <c>per-channel</c> the one-thread-per-
/// (batch, channel) scan it replaced on GPUs. On the CPU accelerator both run on one preset whose warps hold 16
/// lanes (warp 16, 16 lanes per row), so they can be compared there; its shuffles are OS-thread barriers, so the
/// CPU shape is tiny and the CPU numbers only guard against regressions: they say nothing about a GPU.
/// </para>
/// </summary>
public class SelectiveScanBenchmarks : DeviceBenchmark
{
    private SelectiveScanShape shape;
    private SelectiveScanInputs inputs;
    private SelectiveScanGradients gradients;
    private Tensor? y, dy, boundaries;

    /// <summary>batch x length x d_inner x d_state.</summary>
    public static IEnumerable<string> Shapes() => BenchmarkDevice.IsCuda
        ? ["8x1024x1536x16", "2x1024x1536x16"]
        : ["1x16x16x16"];

    public static IEnumerable<string> Passes() => ["forward", "forward+backward"];

    public static IEnumerable<string> Kernels() => BenchmarkDevice.IsCuda ? ["lanes"] : ["per-channel", "lanes"];

    [ParamsSource(nameof(Kernels))]
    public string Kernel { get; set; } = "lanes";

    /// <summary>On the CPU accelerator, warps of 16 with 16 lanes per row, so the lanes kernels run there.</summary>
    protected override DeviceOptions Options => base.Options with { CpuWarpSize = 16, CpuWarpsPerGroup = 1, CpuLanesPerRow = 16 };

    [ParamsSource(nameof(Shapes))]
    public string Shape { get; set; } = "2x256x256x16";

    [ParamsSource(nameof(Passes))]
    public string Pass { get; set; } = "forward";

    private bool Backward => Pass == "forward+backward";

    public override double Bytes
    {
        get
        {
            int[] d = Dims(Shape);
            double tokens = (double)d[0] * d[1], perChannel = tokens * d[2], perState = tokens * d[3];
            double forward = 4 * perChannel + 2 * perState, backward = 7 * perChannel + 4 * perState;
            return sizeof(float) * (Backward ? forward + backward : forward);
        }
    }

    protected override void Prepare()
    {
        int[] d = Dims(Shape);
        int batch = d[0], length = d[1], channels = d[2], states = d[3];
        // The per-channel scan is what a geometry with one lane per row gets (the CPU accelerator only).
        var geometry = KernelGeometry.Of(Device.Runtime);
        if (Kernel == "per-channel") geometry = geometry with { CpuLanesPerRow = 1 };
        shape = SelectiveScanLauncher.ShapeFor(geometry, batch, length, channels, states, hasInitial: false);
        int tokens = batch * length * channels, rows = batch * length * states;
        inputs = new SelectiveScanInputs
        {
            U = RandomTensor([tokens]).View, Delta = RandomTensor([tokens]).View, DeltaBias = RandomTensor([channels], 4, -2).View,
            ALog = RandomTensor([channels * states], 1, 1.5).View, B = RandomTensor([rows]).View, C = RandomTensor([rows]).View,
            DSkip = RandomTensor([channels]).View, Z = RandomTensor([tokens]).View,
        };
        y = Tensor.Empty(Device, [tokens]);
        dy = RandomTensor([tokens]);
        boundaries = Tensor.Empty(Device, [(int)SelectiveScanLauncher.BoundaryLength(shape)]);
        ILGPU.ArrayView<float> Zeros(int n) => Tensor.Zeros(Device, [n]).View;
        gradients = new SelectiveScanGradients
        {
            DU = Zeros(tokens), DDelta = Zeros(tokens), DDeltaBias = Zeros(channels), DALog = Zeros(channels * states),
            DB = Zeros(rows), DC = Zeros(rows), DSkip = Zeros(channels), DZ = Zeros(tokens),
        };
        Console.WriteLine($"// {Kernel}: chunk {shape.Chunk}, state lanes {shape.StateLanes}, lanes {shape.Lanes}, " +
                          $"channels per thread {shape.ChannelsPerThread}");
    }

    /// <summary>One scan (and its backward), then wait for the device so the time covers the kernels.</summary>
    [Benchmark]
    public void Scan()
    {
        var kernels = Device.Kernels.SelectiveScan;
        kernels.Forward(shape, inputs, y!.View, Backward ? boundaries!.View : default, default);
        if (Backward) kernels.Backward(shape, inputs, dy!.View, boundaries!.View, gradients);
        Device.Runtime.Synchronize();
    }
}
