using FlowHN.Kernels;
using FlowHN.Tensors;

namespace FlowHN.Autograd;

/// <summary>Differentiable operations: each runs its forward kernel and records its backward right here.</summary>
public static partial class Ops
{
    private static Tensor Like(Tensor t) => Tensor.Empty(t.Device, t.Shape);

    private static void SameShape(Tensor a, Tensor b, string op)
    {
        if (!a.Shape.SequenceEqual(b.Shape))
            throw new ArgumentException($"{op}: shapes {a.ShapeString} and {b.ShapeString} differ.");
    }

    /// <summary>The gradient buffer of an input that needs one, else a scratch buffer the kernels may write.</summary>
    private static ILGPU.ArrayView<float> GradientOrScratch(Tensor t) =>
        t.RequiresGrad ? Gradients.For(t).View : Tensor.Zeros(t.Device, t.Shape).View;

    /// <summary>Marks <paramref name="y"/> as differentiable and records its backward.</summary>
    private static Tensor Record(Tensor y, Action<Tensor> backward, params Tensor?[] inputs)
    {
        if (!Tape.ShouldRecord(Session.Of(y), inputs)) return y;
        y.RequiresGrad = true;
        Session.Of(y).Tape.Record(() =>
        {
            if (y.Grad is not null) backward(y.Grad);
        });
        return y;
    }

    public static Tensor Add(Tensor a, Tensor b)
    {
        SameShape(a, b, "Add");
        var y = Like(a);
        a.Device.Kernels.Elementwise.LinearCombination(a.View, b.View, y.View, 1f, 1f);
        return Record(y, dy =>
        {
            Gradients.Accumulate(a, dy);
            Gradients.Accumulate(b, dy);
        }, a, b);
    }

    public static Tensor Scale(Tensor a, float alpha)
    {
        var y = Like(a);
        a.Device.Kernels.Elementwise.Scale(a.View, y.View, alpha);
        return Record(y, dy => Gradients.Accumulate(a, dy, alpha), a);
    }

    public static Tensor Mul(Tensor a, Tensor b)
    {
        SameShape(a, b, "Mul");
        var y = Like(a);
        var k = a.Device.Kernels.Elementwise;
        k.Multiply(a.View, b.View, y.View);
        return Record(y, dy =>
        {
            if (a.RequiresGrad) k.MultiplyAccumulate(dy.View, b.View, Gradients.For(a).View);
            if (b.RequiresGrad) k.MultiplyAccumulate(dy.View, a.View, Gradients.For(b).View);
        }, a, b);
    }

    private static Tensor Unary(Tensor x, UnaryOp op)
    {
        var y = Like(x);
        var k = x.Device.Kernels.Elementwise;
        k.Map(op, x.View, y.View);
        return Record(y, dy => k.MapBackward(op, x.View, dy.View, Gradients.For(x).View), x);
    }

    public static Tensor Silu(Tensor x) => Unary(x, UnaryOp.Silu);

    public static Tensor Softplus(Tensor x) => Unary(x, UnaryOp.Softplus);

    public static Tensor Exp(Tensor x) => Unary(x, UnaryOp.Exp);

    /// <summary>silu(gate) * up, the SwiGLU MLP's gating, in one kernel.</summary>
    public static Tensor SwiGlu(Tensor gate, Tensor up)
    {
        SameShape(gate, up, "SwiGlu");
        var y = Like(gate);
        var k = gate.Device.Kernels.Elementwise;
        k.SwiGlu(gate.View, up.View, y.View);
        return Record(y, dy =>
        {
            // The kernel writes both gradients; a side that needs none gets a throw-away buffer.
            k.SwiGluBackward(gate.View, up.View, dy.View, GradientOrScratch(gate), GradientOrScratch(up));
        }, gate, up);
    }
}
