using FlowHN.Autograd;
using FlowHN.Diagnostics;
using FlowHN.Runtime;
using FlowHN.Tensors;

using static FlowHN.Tests.GradientAssert;

namespace FlowHN.Tests.Autograd;

/// <summary>Finite-difference gradient checks of the selective scan (every input) and the causal convolution.</summary>
public class MambaGradientTests
{
    private static Session Device => TestDevice.Cpu;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void SelectiveScanGradientsOfEveryInput(bool withInitial)
    {
        const int batch = 2, length = 9, channels = 3, states = 4;
        var x = KernelChecks.RandomScanData(new Random(21), batch, length, channels, states, withInitial);
        var u = Input(x.U, batch, length, channels);
        var delta = Input(x.Delta, batch, length, channels);
        var deltaBias = Input(x.DeltaBias, channels);
        var aLog = Input(x.ALog, channels, states);
        var b = Input(x.B, batch, length, states);
        var c = Input(x.C, batch, length, states);
        var dSkip = Input(x.DSkip, channels);
        var z = Input(x.Z, batch, length, channels);
        var initial = withInitial ? Input(x.Initial!, batch, channels, states) : null;
        Tensor[] inputs = initial is null
            ? [u, delta, deltaBias, aLog, b, c, dSkip, z]
            : [u, delta, deltaBias, aLog, b, c, dSkip, z, initial];
        AssertGradients(() => Ops.SelectiveScan(u, delta, deltaBias, aLog, b, c, dSkip, z, initial), inputs);
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(false, false)]
    public void CausalConvGradients(bool silu, bool withState)
    {
        const int batch = 2, length = 7, channels = 3, width = 4;
        var x = Input(Reference.Random(batch * length * channels, 23), batch, length, channels);
        var w = Input(Reference.Random(channels * width, 24, 0.5), channels, width);
        var bias = Input(Reference.Random(channels, 25), channels);
        var state = withState ? Input(Reference.Random(batch * (width - 1) * channels, 26), batch, width - 1, channels) : null;
        Tensor[] inputs = state is null ? [x, w, bias] : [x, w, bias, state];
        AssertGradients(() => Ops.CausalConv1d(x, w, bias, silu, state), inputs);
    }

    [Fact]
    public void ConvolutionThenScanLikeAMambaMixer()
    {
        // conv + SiLU feeding the scan's u, as in the mixer: gradients must flow through both ops.
        const int batch = 1, length = 8, channels = 3, states = 4;
        var data = KernelChecks.RandomScanData(new Random(27), batch, length, channels, states, withInitial: false);
        var x = Input(data.U, batch, length, channels);
        var w = Input(Reference.Random(channels * 4, 28, 0.5), channels, 4);
        using var scope = Device.BeginScope();
        Tensor Fixed(float[] values, params int[] shape) => Tensor.FromArray(Device, values, shape);
        var bias = Fixed(Reference.Random(channels, 29), channels);
        AssertGradients(() => Ops.SelectiveScan(Ops.CausalConv1d(x, w, bias, silu: true), Fixed(data.Delta, batch, length, channels),
            Fixed(data.DeltaBias, channels), Fixed(data.ALog, channels, states), Fixed(data.B, batch, length, states),
            Fixed(data.C, batch, length, states), Fixed(data.DSkip, channels), Fixed(data.Z, batch, length, channels)), x, w);
    }
}
