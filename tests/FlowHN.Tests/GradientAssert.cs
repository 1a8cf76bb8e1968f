using FlowHN.Autograd;
using FlowHN.Tensors;

namespace FlowHN.Tests;

/// <summary>Shared helpers of the finite-difference gradient tests (on the default CPU device).</summary>
public static class GradientAssert
{
    public const double Tolerance = 1e-2;

    /// <summary>A random N(0, 1) input that requires a gradient.</summary>
    public static Tensor Input(int seed, params int[] shape) => Input(Reference.Random((int)Tensor.ShapeLength(shape), seed), shape);

    public static Tensor Input(float[] data, params int[] shape)
    {
        var t = Tensor.FromArray(TestDevice.Cpu, data, shape);
        t.RequiresGrad = true;
        return t;
    }

    /// <summary>Every input's gradient passes the check; the inputs are disposed afterwards.</summary>
    public static void AssertGradients(Func<Tensor> forward, params Tensor[] inputs)
    {
        var results = GradCheck.Run(TestDevice.Cpu, forward, inputs);
        Assert.Equal(inputs.Length, results.Count);
        foreach (var r in results) Assert.True(r.RelativeError < Tolerance, r.ToString());
        foreach (var t in inputs) t.Dispose();
    }
}
