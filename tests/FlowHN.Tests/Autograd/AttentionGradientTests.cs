using FlowHN.Autograd;
using FlowHN.Runtime;
using FlowHN.Tensors;

using static FlowHN.Tests.GradientAssert;

namespace FlowHN.Tests.Autograd;

/// <summary>Finite-difference gradient checks of attention (q, k and v) and RoPE.</summary>
public class AttentionGradientTests
{
    private static Session Device => TestDevice.Cpu;

    [Fact]
    public void CausalAttentionWithGroupedHeads()
    {
        var q = Input(1, 2, 6, 4, 5);
        var k = Input(2, 2, 6, 2, 5);
        var v = Input(3, 2, 6, 2, 5);
        AssertGradients(() => Ops.CausalAttention(q, k, v), q, k, v);
    }

    [Fact]
    public void AttentionForSomeQueryPositions()
    {
        // Queries at positions 15..17 attending to keys 0..17: more than one CPU tile of keys.
        var q = Input(4, 1, 3, 2, 6);
        var k = Input(5, 1, 18, 1, 6);
        var v = Input(6, 1, 18, 1, 6);
        using var qPos = Tensor.FromArray(Device, [15, 16, 17], 3);
        using var kPos = Tensor.FromArray(Device, Enumerable.Range(0, 18).ToArray(), 18);
        AssertGradients(() => Ops.Attention(q, k, v, qPos, kPos), q, k, v);
    }

    [Fact]
    public void Rope()
    {
        var x = Input(7, 2, 3, 2, 6);
        using var positions = Tensor.FromArray(Device, [4, 0, 11], 3);
        AssertGradients(() => Ops.Rope(x, positions), x);
    }
}
