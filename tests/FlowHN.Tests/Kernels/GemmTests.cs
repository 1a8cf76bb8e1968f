using FlowHN.Kernels;
using FlowHN.Runtime;
using FlowHN.Tensors;
using MathNet.Numerics.LinearAlgebra;

namespace FlowHN.Tests.Kernels;

public class GemmTests
{
    private static Matrix<double> ToMatrix(float[] data, int rows, int cols) =>
        Matrix<double>.Build.Dense(rows, cols, (i, j) => data[i * cols + j]);

    /// <summary>op(A) op(B) with A stored [M,K] or [K,M] (transposed view), B [K,N] or [N,K].</summary>
    [Theory]
    [InlineData(7, 5, 3, false, false)]
    [InlineData(33, 17, 29, false, true)]
    [InlineData(18, 41, 9, true, false)]
    [InlineData(64, 64, 64, false, false)]
    [InlineData(1, 13, 70, true, true)]
    public void MatchesFloat64Reference(int m, int n, int k, bool transposeA, bool transposeB)
    {
        var device = TestDevice.Cpu;
        using var scope = device.BeginScope();
        var aData = Reference.Random(m * k, 1);
        var bData = Reference.Random(k * n, 2);
        var a = transposeA ? Tensor.FromArray(device, aData, k, m).TransposeView(0, 1) : Tensor.FromArray(device, aData, m, k);
        var b = transposeB ? Tensor.FromArray(device, bData, n, k).TransposeView(0, 1) : Tensor.FromArray(device, bData, k, n);
        var aRef = transposeA ? ToMatrix(aData, k, m).Transpose() : ToMatrix(aData, m, k);
        var bRef = transposeB ? ToMatrix(bData, n, k).Transpose() : ToMatrix(bData, k, n);
        var cInit = Reference.Random(m * n, 3);
        var c = Tensor.FromArray(device, cInit, m, n);

        device.Kernels.Gemm.MatMul(a, b, c, alpha: 0.5f, beta: 2f);

        var expected = (aRef * bRef * 0.5 + ToMatrix(cInit, m, n) * 2).ToRowMajorArray();
        Reference.AssertClose(c.ToArray(), expected, 1e-5);
    }

    [Fact]
    public void BatchedWithSharedOperandAndRaggedTiles()
    {
        var device = TestDevice.Cpu;
        using var scope = device.BeginScope();
        int batch = 3, m = 10, n = 11, k = 13;
        var aData = Reference.Random(batch * m * k, 4);
        var bData = Reference.Random(batch * k * n, 5);
        var a = Tensor.FromArray(device, aData, batch, m, k);
        var b = Tensor.FromArray(device, bData, batch, k, n);
        var c = Tensor.Empty(device, [batch, m, n]);
        var s = TensorLaunches.DescribeMatMul(a, b, c, 1f, 0f, out int count);
        // Odd tile shapes (3 x 2 threads, K tile 5) so every tile edge is ragged.
        device.Kernels.Gemm.RunTiled(a.View, b.View, c.View, s, count, threadsX: 2, threadsY: 1, tileK: 5);
        var result = c.ToArray();
        var expected = new List<double>();
        for (int i = 0; i < batch; i++)
            expected.AddRange((ToMatrix(aData[(i * m * k)..((i + 1) * m * k)], m, k) *
                               ToMatrix(bData[(i * k * n)..((i + 1) * k * n)], k, n)).ToRowMajorArray());
        Reference.AssertClose(result, expected, 1e-5);
    }

    [Fact]
    public void WideGroupsGiveTheSameProduct()
    {
        var device = TestDevice.Wide;
        using var scope = device.BeginScope();
        int m = 37, n = 23, k = 19;
        var aData = Reference.Random(m * k, 6);
        var bData = Reference.Random(k * n, 7);
        var a = Tensor.FromArray(device, aData, m, k);
        var b = Tensor.FromArray(device, bData, k, n);
        var c = Tensor.Empty(device, [m, n]);
        var s = TensorLaunches.DescribeMatMul(a, b, c, 1f, 0f, out _);
        device.Kernels.Gemm.RunTiled(a.View, b.View, c.View, s, 1, threadsX: 4, threadsY: 2, tileK: 8);
        Reference.AssertClose(c.ToArray(), (ToMatrix(aData, m, k) * ToMatrix(bData, k, n)).ToRowMajorArray(), 1e-5);
    }

    [Fact]
    public void BetaZeroIgnoresGarbageInOutput()
    {
        var device = TestDevice.Cpu;
        using var scope = device.BeginScope();
        var a = Tensor.FromArray(device, Reference.Random(6, 8), 2, 3);
        var b = Tensor.FromArray(device, Reference.Random(12, 9), 3, 4);
        var c = Tensor.FromArray(device, Enumerable.Repeat(float.NaN, 8).ToArray(), 2, 4);
        device.Kernels.Gemm.MatMul(a, b, c);
        Assert.All(c.ToArray(), v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void MismatchedShapesAreRejected()
    {
        var device = TestDevice.Cpu;
        using var scope = device.BeginScope();
        var a = Tensor.Empty(device, [2, 3]);
        var b = Tensor.Empty(device, [4, 5]);
        var c = Tensor.Empty(device, [2, 5]);
        Assert.Throws<ArgumentException>(() => device.Kernels.Gemm.MatMul(a, b, c));
    }
}
