using FlowHN.Autograd;
using FlowHN.Diagnostics;
using FlowHN.Runtime;

namespace FlowHN.Tests.Runtime;

public class DeviceTests
{
    [Theory]
    [InlineData("auto", DeviceKind.Auto)]
    [InlineData("CPU", DeviceKind.Cpu)]
    [InlineData("cuda", DeviceKind.Cuda)]
    public void ParsesDeviceNames(string text, DeviceKind expected) => Assert.Equal(expected, DeviceOptions.ParseDevice(text));

    [Fact]
    public void UnknownDeviceIsAUserError()
    {
        var e = Assert.Throws<UserException>(() => DeviceOptions.ParseDevice("tpu"));
        Assert.Contains("tpu", e.Message);
        Assert.Contains("auto, cuda, cpu", e.Message);
    }

    [Fact]
    public void PeakTableKnowsTheH100AndLabelsEstimates()
    {
        var h100 = PeakFlops.Lookup("NVIDIA H100 80GB HBM3", 1);
        Assert.Equal(66.9e12, h100.Fp32, 1);
        Assert.Equal(494.7e12, h100.Tf32, 1);
        Assert.Equal(51.2e12, PeakFlops.Lookup("NVIDIA H100 PCIe", 1).Fp32, 1);
        Assert.Equal("estimate", PeakFlops.Lookup("Some CPU", 5e10).Source);
        Assert.Equal(12e12, PeakFlops.Override(12).Fp32, 1);
    }

    [Fact]
    public void CpuDeviceUsesTheRequestedPreset()
    {
        var device = TestDevice.Wide;
        Assert.False(device.Runtime.IsCuda);
        Assert.Equal(4, device.Runtime.Accelerator.WarpSize);
        Assert.Equal(8, device.Runtime.Accelerator.MaxNumThreadsPerGroup);
    }

    [Fact]
    public void CublasIsRefusedWithoutCuda()
    {
        using var device = Session.Create(new DeviceOptions { Device = DeviceKind.Cpu, Gemm = GemmBackendKind.Cublas });
        var e = Assert.Throws<UserException>(() => device.Kernels.Gemm);
        Assert.Contains("CUDA", e.Message);
    }

    [Fact]
    public void StreamPriorityIsANoOpOnTheCpuAccelerator()
    {
        var device = TestDevice.Cpu;
        Assert.Null(device.Runtime.StreamPriorities);
        using var urgent = device.Runtime.CreateStream(highPriority: true);
        Assert.Null(urgent.RequestedPriority);
        Assert.Null(urgent.QueryPriority());
        using var streams = new BranchStreams(device);
        Assert.Contains("serial on the CPU accelerator", streams.Describe());
        // flowhn check's stream check needs a CUDA device; here it says it does not apply instead of passing.
        Assert.Null(StreamPriorityCheck.Run(device));
    }

    [Fact]
    public void StreamCheckFailsUnlessTheSsmStreamReallyHasTheHighestPriority()
    {
        var levels = new StreamPriorityRange(Least: 0, Greatest: -5);
        Assert.Null(StreamPriorityCheck.Judge(levels, ssm: -5, attention: 0, main: 0));
        // The stream was made without its priority (what a plain ILGPU stream gets), or at a middle level.
        Assert.Contains("expected the SSM at -5", StreamPriorityCheck.Judge(levels, ssm: 0, attention: 0, main: 0));
        Assert.NotNull(StreamPriorityCheck.Judge(levels, ssm: -2, attention: 0, main: 0));
        // Attention must stay at the default, not be raised with the SSM.
        Assert.NotNull(StreamPriorityCheck.Judge(levels, ssm: -5, attention: -5, main: 0));
        // A device with one level: equal priorities are all there is.
        Assert.Null(StreamPriorityCheck.Judge(new StreamPriorityRange(0, 0), ssm: 0, attention: 0, main: 0));
    }

    [Fact]
    public void EventsOnTheCpuTimeWhatHappensBetweenThem()
    {
        var device = TestDevice.Cpu;
        using var stream = device.Runtime.CreateStream();
        using var start = device.Runtime.CreateEvent(timing: true);
        using var end = device.Runtime.CreateEvent(timing: true);
        start.Record(device.Runtime.DefaultStream);
        stream.Wait(start);
        Thread.Sleep(50);
        end.Record(stream);
        // At least the 50 ms slept (a sleep never ends early), in milliseconds (not ticks or seconds), signed.
        double elapsed = DeviceEvent.ElapsedMilliseconds(start, end);
        Assert.InRange(elapsed, 50, 60_000);
        Assert.Equal(-elapsed, DeviceEvent.ElapsedMilliseconds(end, start), 9);
    }

    [Fact]
    public void KernelsRefuseMoreElementsThanTheirGridStrideLoopsCanStepOver()
    {
        Assert.Equal(FlowHN.Kernels.Launch.MaxElements, FlowHN.Kernels.Launch.CheckedInt(FlowHN.Kernels.Launch.MaxElements, "x"));
        var e = Assert.Throws<UserException>(() => FlowHN.Kernels.Launch.CheckedInt(FlowHN.Kernels.Launch.MaxElements + 1L, "logits"));
        Assert.Contains("--batch", e.Message);
    }
}
