using FlowHN.Kernels;

namespace FlowHN.Tests.Kernels;

/// <summary>
/// The cuBLAS call's arguments, checked without a GPU: a column-major SGEMM written from the BLAS definition
/// (including its argument checks, which cuBLAS reports as status 7) must reproduce the row-major product.
/// </summary>
public class CublasCallTests
{
    public static IEnumerable<object[]> Shapes()
    {
        // m, n, k, A transposed, B transposed; the ones give degenerate strides such as (1, 1).
        foreach (int m in new[] { 1, 3 })
            foreach (int n in new[] { 1, 4 })
                foreach (int k in new[] { 1, 5 })
                    foreach (bool ta in new[] { false, true })
                        foreach (bool tb in new[] { false, true })
                            yield return [m, n, k, ta, tb];
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void TheColumnMajorCallComputesTheRowMajorProduct(int m, int n, int k, bool transposeA, bool transposeB)
    {
        var a = Reference.Random(m * k, 1);
        var b = Reference.Random(k * n, 2);
        // Row-major operands, stored as [M, K] / [K, N] or as the transpose of [K, M] / [N, K].
        var (aRow, aCol) = transposeA ? (1, Math.Max(1, m)) : (k, 1);
        var (bRow, bCol) = transposeB ? (1, Math.Max(1, k)) : (n, 1);
        if (transposeA && m == 1) (aRow, aCol) = (1, 1); // what a transposed [K, 1] tensor's strides are
        if (transposeB && k == 1) (bRow, bCol) = (1, 1);
        var s = new GemmShape { M = m, N = n, K = k, ARow = aRow, ACol = aCol, BRow = bRow, BCol = bCol, CRow = n, Alpha = 1, Beta = 0 };
        var call = CublasGemmCall.For(s);
        Assert.NotNull(call);
        var c = new float[m * n];
        ColumnMajorSgemm(call!.Value.OpFirst, call.Value.OpSecond, n, m, k, b, call.Value.LdFirst, a, call.Value.LdSecond, c, s.CRow);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double expected = 0;
                for (int p = 0; p < k; p++) expected += (double)a[i * aRow + p * aCol] * b[p * bRow + j * bCol];
                Assert.Equal(expected, c[i * n + j], 5);
            }
    }

    [Fact]
    public void StridesCublasCannotTakeAreRefused()
    {
        // A view with no unit stride (every second column of every second row).
        var s = new GemmShape { M = 2, N = 2, K = 2, ARow = 4, ACol = 2, BRow = 2, BCol = 1, CRow = 2 };
        Assert.Null(CublasGemmCall.For(s));
        Assert.Null(CublasGemmCall.For(s with { ACol = 1, ARow = 2, CRow = 1 })); // C rows overlap
    }

    /// <summary>C = op(A) op(B), column-major, as BLAS defines SGEMM (alpha 1, beta 0), with its argument checks.</summary>
    private static void ColumnMajorSgemm(int opA, int opB, int m, int n, int k, float[] a, int lda, float[] b, int ldb, float[] c, int ldc)
    {
        bool ta = opA == CublasNative.OpT, tb = opB == CublasNative.OpT;
        Assert.True(lda >= Math.Max(1, ta ? k : m), $"lda {lda}");
        Assert.True(ldb >= Math.Max(1, tb ? n : k), $"ldb {ldb}");
        Assert.True(ldc >= Math.Max(1, m), $"ldc {ldc}");
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int p = 0; p < k; p++)
                    sum += (double)(ta ? a[p + i * lda] : a[i + p * lda]) * (tb ? b[j + p * ldb] : b[p + j * ldb]);
                c[i + j * ldc] = (float)sum;
            }
    }
}
