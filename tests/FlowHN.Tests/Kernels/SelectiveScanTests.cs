using FlowHN.Autograd;
using FlowHN.Diagnostics;
using FlowHN.Kernels;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Tests.Kernels;

/// <summary>
/// The selective scan against the float64 sequential reference, independence of the chunk size, continuing a
/// scan from a carried state, and bitwise reproducible gradients.
/// </summary>
public class SelectiveScanTests
{
    private const double Tolerance = 1e-5;

    private static ScanData RandomScan(int seed, int batch, int length, int channels, int states, bool withInitial) =>
        KernelChecks.RandomScanData(new Random(seed), batch, length, channels, states, withInitial);

    /// <summary>The scan's output, final state and every gradient (for output gradient dy), at a given chunk size.</summary>
    private static float[][] Run(Session device, ScanData x, int chunk, float[]? dy = null)
    {
        using var scope = device.BeginScope();
        var kernels = device.Kernels.SelectiveScan;
        var s = kernels.Shape(x.Batch, x.Length, x.Channels, x.States, x.Initial is not null, chunk);
        Tensor Up(float[] data) => Tensor.FromArray(device, data, data.Length);
        var p = new SelectiveScanInputs
        {
            U = Up(x.U).View, Delta = Up(x.Delta).View, DeltaBias = Up(x.DeltaBias).View, ALog = Up(x.ALog).View,
            B = Up(x.B).View, C = Up(x.C).View, DSkip = Up(x.DSkip).View, Z = Up(x.Z).View,
            Initial = x.Initial is null ? default : Up(x.Initial).View,
        };
        var y = Tensor.Empty(device, [x.U.Length]);
        var final = Tensor.Zeros(device, [x.Batch * x.Channels * x.States]);
        var boundaries = Tensor.Empty(device, [(int)SelectiveScanLauncher.BoundaryLength(s)]);
        kernels.Forward(s, p, y.View, boundaries.View, final.View);
        if (dy is null) return [y.ToArray(), final.ToArray()];
        var g = new[] { x.U, x.Delta, x.DeltaBias, x.ALog, x.B, x.C, x.DSkip, x.Z, x.Initial ?? [] }
            .Select(input => Tensor.Zeros(device, [Math.Max(1, input.Length)])).ToArray();
        kernels.Backward(s, p, Up(dy).View, boundaries.View, new SelectiveScanGradients
        {
            DU = g[0].View, DDelta = g[1].View, DDeltaBias = g[2].View, DALog = g[3].View, DB = g[4].View, DC = g[5].View,
            DSkip = g[6].View, DZ = g[7].View, DInitial = x.Initial is null ? default : g[8].View,
        });
        return [y.ToArray(), final.ToArray(), .. g.Select(t => t.ToArray())];
    }

    public static IEnumerable<object[]> Shapes() =>
        from shape in new[]
        {
            new[] { 37, 6, 16, 8, 0 },   // several chunks, the last one partial
            new[] { 19, 5, 4, 5, 1 },    // small d_state, an initial state
            new[] { 13, 6, 5, 4, 1 },    // d_state no power of two (padding lanes where lanes run)
            new[] { 1, 3, 16, 1, 0 },    // one step
            new[] { 20, 9, 32, 16, 1 },  // the largest d_state
            new[] { 70, 4, 16, 0, 1 },   // the launcher's own chunk (64 at d_state 16)
        }
        from device in new[] { "default", "wide", "warp32" }
        select new object[] { device, shape[0], shape[1], shape[2], shape[3], shape[4] == 1 };

    /// <summary>Every CPU preset, and the GPU's geometry where the forward runs lanes over states for every d_state.</summary>
    public static IEnumerable<object[]> Devices() => [["default"], ["wide"], ["warp32"]];

    [Fact]
    public void GpuGeometryRunsLanesOverStatesForEveryDState()
    {
        var cpu = KernelGeometry.Of(TestDevice.Cpu.Runtime);
        foreach (int states in new[] { 1, 4, 5, 16, 17, 32 })
        {
            var gpu = SelectiveScanLauncher.ShapeFor(KernelGeometry.Cuda, 2, 10, 8, states, hasInitial: false);
            Assert.Equal(SelectiveScanKernels.StateLanesFor(states), gpu.StateLanes);
            Assert.True(gpu.StateLanes >= states && gpu.StateLanes < 2 * states);
            if (states > 1) Assert.Equal(0, SelectiveScanLauncher.ShapeFor(cpu, 2, 10, 8, states, hasInitial: false).StateLanes);
        }
        // A preset whose warps hold the lanes runs them too (the kernel checks rely on it).
        Assert.Equal(16, TestDevice.Warp32.Kernels.SelectiveScan.Shape(2, 10, 8, 16, hasInitial: false).StateLanes);
        Assert.Equal(4, TestDevice.Wide.Kernels.SelectiveScan.Shape(2, 10, 8, 3, hasInitial: false).StateLanes);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void ForwardMatchesSequentialFloat64Reference(string device, int length, int channels, int states, int chunk,
        bool withInitial)
    {
        var x = RandomScan(length * 31 + channels, 2, length, channels, states, withInitial);
        var result = Run(TestDevice.Get(device), x, chunk);
        var (y, final) = HostReference.SelectiveScan(x);
        Reference.AssertClose(result[0], y, Tolerance);
        Reference.AssertClose(result[1], final, Tolerance);
    }

    [Theory]
    [MemberData(nameof(Devices))]
    public void OutputAndGradientsDoNotDependOnTheChunkSize(string device)
    {
        var x = RandomScan(3, 2, 45, 7, 16, withInitial: true);
        var dy = Reference.Random(x.U.Length, 4);
        var whole = Run(TestDevice.Get(device), x, chunk: 32, dy);
        foreach (int chunk in new[] { 1, 7, 16 })
        {
            var chunked = Run(TestDevice.Get(device), x, chunk, dy);
            for (int i = 0; i < whole.Length; i++)
            {
                Assert.Contains(whole[i], v => v != 0f);
                Reference.AssertClose(chunked[i], Reference.ToDouble(whole[i]), 1e-6);
            }
        }
    }

    [Theory]
    [MemberData(nameof(TestDevice.Both), MemberType = typeof(TestDevice))]
    public void ScanningTwoHalvesWithTheCarriedStateEqualsOnePass(string device)
    {
        var d = TestDevice.Get(device);
        const int batch = 2, length = 30, half = 13, channels = 5, states = 8;
        var x = RandomScan(5, batch, length, channels, states, withInitial: true);
        using var scope = d.BeginScope();
        var (whole, wholeFinal) = Scan(d, x, 0, length, Tensor.FromArray(d, x.Initial!, batch, channels, states));
        var (first, carried) = Scan(d, x, 0, half, Tensor.FromArray(d, x.Initial!, batch, channels, states));
        var (second, final) = Scan(d, x, half, length - half, carried);
        var joined = new float[whole.Length];
        for (int b = 0; b < batch; b++)
        {
            Array.Copy(first, b * half * channels, joined, b * length * channels, half * channels);
            Array.Copy(second, b * (length - half) * channels, joined, (b * length + half) * channels, (length - half) * channels);
        }
        Reference.AssertClose(joined, Reference.ToDouble(whole), 1e-6);
        Reference.AssertClose(final.ToArray(), Reference.ToDouble(wholeFinal.ToArray()), 1e-6);
        Reference.AssertClose(joined, HostReference.SelectiveScan(x).Y, Tolerance);
    }

    /// <summary>Ops.SelectiveScanWithState over the time steps [start, start + count) of x.</summary>
    private static (float[] Y, Tensor Final) Scan(Session d, ScanData x, int start, int count, Tensor initial)
    {
        Tensor Slice(float[] data, int width) => Tensor.FromArray(d, Enumerable.Range(0, x.Batch)
            .SelectMany(b => data.Skip((b * x.Length + start) * width).Take(count * width)).ToArray(), x.Batch, count, width);
        var (y, final) = Ops.SelectiveScanWithState(Slice(x.U, x.Channels), Slice(x.Delta, x.Channels),
            Tensor.FromArray(d, x.DeltaBias, x.Channels), Tensor.FromArray(d, x.ALog, x.Channels, x.States),
            Slice(x.B, x.States), Slice(x.C, x.States), Tensor.FromArray(d, x.DSkip, x.Channels), Slice(x.Z, x.Channels),
            initial);
        return (y.ToArray(), final);
    }

    [Theory]
    [MemberData(nameof(Devices))]
    public void BackwardIsBitwiseDeterministicAndMatchesTheReference(string device)
    {
        var x = RandomScan(6, 3, 23, 11, 16, withInitial: true);
        var dy = Reference.Random(x.U.Length, 7);
        var first = Run(TestDevice.Get(device), x, chunk: 8, dy);
        var second = Run(TestDevice.Get(device), x, chunk: 8, dy);
        for (int i = 0; i < first.Length; i++) Assert.Equal(first[i], second[i]);
        var r = HostReference.SelectiveScanBackward(x, dy);
        var expected = new[] { r.DU, r.DDelta, r.DDeltaBias, r.DALog, r.DB, r.DC, r.DSkip, r.DZ, r.DInitial };
        for (int i = 0; i < expected.Length; i++) Reference.AssertClose(first[i + 2], expected[i], 1e-4);
    }

    /// <summary>
    /// Causality with lanes over states (the GPU geometry, where lane j loads timestep j of each block): changing
    /// every input from timestep 6 on leaves the outputs before it bit for bit, and changes those after.
    /// </summary>
    [Fact]
    public void LanesOverStatesAreCausal()
    {
        const int batch = 2, length = 21, channels = 3, states = 16, cut = 6;
        var x = RandomScan(31, batch, length, channels, states, withInitial: false);
        var before = Run(TestDevice.Warp32, x, chunk: 8)[0];
        var changed = new Random(32);
        void Perturb(float[] data, int width)
        {
            for (int b = 0; b < batch; b++)
                for (int i = (b * length + cut) * width; i < (b + 1) * length * width; i++) data[i] += (float)changed.NextDouble();
        }
        Perturb(x.U, channels);
        Perturb(x.Delta, channels);
        Perturb(x.Z, channels);
        Perturb(x.B, states);
        Perturb(x.C, states);
        var after = Run(TestDevice.Warp32, x, chunk: 8)[0];
        for (int b = 0; b < batch; b++)
        {
            int first = b * length * channels;
            Assert.Equal(before[first..(first + cut * channels)], after[first..(first + cut * channels)]);
            Assert.NotEqual(before[(first + cut * channels)..(first + length * channels)], after[(first + cut * channels)..(first + length * channels)]);
        }
    }

    /// <summary>
    /// Finite-difference gradients of every input through the lanes-over-states kernels: the wide preset at
    /// d_state 4 (4 lanes per channel) and the GPU geometry at d_state 16 (16 lanes, two channels per warp).
    /// </summary>
    [Theory]
    [InlineData("wide", 4)]
    [InlineData("warp32", 16)]
    public void LanesOverStatesPassTheGradientCheck(string device, int states)
    {
        var d = TestDevice.Get(device);
        const int batch = 2, length = 7, channels = 3;
        Assert.True(d.Kernels.SelectiveScan.Shape(batch, length, channels, states, true).StateLanes > 0);
        var x = RandomScan(29, batch, length, channels, states, withInitial: true);
        Tensor Input(float[] data, params int[] shape)
        {
            var t = Tensor.FromArray(d, data, shape);
            t.RequiresGrad = true;
            return t;
        }
        Tensor[] inputs =
        [
            Input(x.U, batch, length, channels), Input(x.Delta, batch, length, channels), Input(x.DeltaBias, channels),
            Input(x.ALog, channels, states), Input(x.B, batch, length, states), Input(x.C, batch, length, states),
            Input(x.DSkip, channels), Input(x.Z, batch, length, channels), Input(x.Initial!, batch, channels, states),
        ];
        var results = GradCheck.Run(d, () => Ops.SelectiveScan(inputs[0], inputs[1], inputs[2], inputs[3], inputs[4], inputs[5],
            inputs[6], inputs[7], inputs[8]), inputs, maxCoordinates: 12);
        Assert.Equal(inputs.Length, results.Count);
        foreach (var r in results) Assert.True(r.RelativeError < GradientAssert.Tolerance, r.ToString());
        foreach (var t in inputs) t.Dispose();
    }

    [Fact]
    public void ShapesAreChecked()
    {
        var d = TestDevice.Cpu;
        using var scope = d.BeginScope();
        var u = Tensor.Zeros(d, [1, 4, 3]);
        var aLog = Tensor.Zeros(d, [3, 2]);
        var rows = Tensor.Zeros(d, [1, 4, 2]);
        var vector = Tensor.Zeros(d, [3]);
        Assert.Throws<ArgumentException>(() => Ops.SelectiveScan(u, u, vector, aLog, rows, Tensor.Zeros(d, [1, 4, 3]), vector, u));
        Assert.Throws<ArgumentException>(() => Ops.SelectiveScan(u, u, vector, aLog, rows, rows, vector, u, Tensor.Zeros(d, [1, 2, 3])));
        Assert.Throws<ArgumentException>(() => d.Kernels.SelectiveScan.Shape(1, 4, 3, SelectiveScanKernels.MaxStates + 1, false));
        Assert.Throws<ArgumentException>(() => d.Kernels.SelectiveScan.Shape(1, 400, 3, 16, false, chunk: 65));
    }
}
