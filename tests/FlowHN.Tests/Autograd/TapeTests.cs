using FlowHN.Autograd;
using FlowHN.Tensors;

namespace FlowHN.Tests.Autograd;

public class TapeTests
{
    [Fact]
    public void FanOutAccumulatesGradients()
    {
        var device = TestDevice.Cpu;
        using var scope = device.BeginScope();
        var x = Tensor.FromArray(device, [1f, -2f, 3f], 3);
        x.RequiresGrad = true;
        // y = sum(x * x + 3x): x is used three times, dy/dx = 2x + 3.
        var loss = Ops.Sum(Ops.Add(Ops.Mul(x, x), Ops.Scale(x, 3f)));
        device.Tape.Backward(loss);
        Assert.Equal([5f, -1f, 9f], x.Grad!.ToArray());
    }

    [Fact]
    public void ParameterGradientsAccumulateUntilZeroed()
    {
        var device = TestDevice.Cpu;
        using var p = Parameter.Create(device, "layer.weight", [2], [1f, 2f], weightDecay: true);
        for (int step = 0; step < 2; step++)
        {
            using var scope = device.BeginScope();
            device.Tape.Backward(Ops.Sum(Ops.Scale(p, 2f)));
        }
        Assert.Equal([4f, 4f], p.Grad!.ToArray());
        p.ZeroGrad();
        Assert.Equal([0f, 0f], p.Grad!.ToArray());
        Assert.Equal("layer.weight", p.Name);
    }

    [Fact]
    public void NoGradScopeRecordsNothing()
    {
        var device = TestDevice.Cpu;
        using var scope = device.BeginScope();
        var x = Tensor.FromArray(device, [1f, 2f], 2);
        x.RequiresGrad = true;
        Tensor y;
        using (new NoGradScope(device)) y = Ops.Silu(x);
        Assert.False(y.RequiresGrad);
        Assert.Equal(0, device.Tape.Count);
        Assert.Throws<InvalidOperationException>(() => device.Tape.Backward(Ops.Sum(y)));
    }

    [Fact]
    public void BackwardNeedsAScalar()
    {
        var device = TestDevice.Cpu;
        using var scope = device.BeginScope();
        var x = Tensor.FromArray(device, [1f, 2f], 2);
        x.RequiresGrad = true;
        var ex = Assert.Throws<InvalidOperationException>(() => device.Tape.Backward(Ops.Silu(x)));
        Assert.Contains("scalar", ex.Message);
        device.Tape.Clear();
    }
}
