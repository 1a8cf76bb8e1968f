using FlowHN.Autograd;
using FlowHN.Tensors;

namespace FlowHN.Tests.Autograd;

public class SessionTests
{
    [Fact]
    public void TwoSessionsOnOneDeviceKeepTheirOwnTapeGradModeAndScopes()
    {
        var device = TestDevice.Cpu.Runtime;
        using var first = new Session(device);
        using var second = new Session(device);
        var firstScope = first.BeginScope();
        var secondScope = second.BeginScope();
        var a = Tensor.FromArray(first, [1f, -2f], 2);
        var b = Tensor.FromArray(second, [0.5f, -1.5f], 2);
        a.RequiresGrad = b.RequiresGrad = true;

        // Grad mode: off in the first session only.
        Tensor fromA, fromB;
        using (new NoGradScope(first))
        {
            fromA = Ops.Silu(a);
            fromB = Ops.Silu(b);
        }
        Assert.False(fromA.RequiresGrad);
        Assert.True(fromB.RequiresGrad);
        Assert.Same(second, fromB.Device);

        // Tapes: each op is recorded on its own session's tape.
        var scaled = Ops.Scale(a, 2f);
        Assert.True(scaled.RequiresGrad);
        Assert.Equal(1, first.Tape.Count);
        Assert.Equal(1, second.Tape.Count);

        // Scopes: the first session's scope ends while the second's (opened later) is still open; it frees only its
        // own tensors and drops only its own tape.
        firstScope.Dispose();
        Assert.Throws<ObjectDisposedException>(() => a.View);
        Assert.Equal(0, first.Tape.Count);
        Assert.Equal(1, second.Tape.Count);
        Assert.Equal([0.5f, -1.5f], b.ToArray());

        second.Tape.Backward(Ops.Sum(fromB));
        double[] expected = [0.5, -1.5];
        var gradient = b.Grad!.ToArray();
        for (int i = 0; i < expected.Length; i++)
        {
            double sigmoid = 1 / (1 + Math.Exp(-expected[i]));
            Assert.Equal(sigmoid * (1 + expected[i] * (1 - sigmoid)), gradient[i], 1e-6);
        }
        secondScope.Dispose();
        Assert.Throws<ObjectDisposedException>(() => b.View);
    }

    [Fact]
    public void ScopesOfOneSessionStillEndInReverseOrder()
    {
        using var session = new Session(TestDevice.Cpu.Runtime);
        var outer = session.BeginScope();
        using var inner = session.BeginScope();
        Assert.Throws<InvalidOperationException>(outer.Dispose);
    }
}
