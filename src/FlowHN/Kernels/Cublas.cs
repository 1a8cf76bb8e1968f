using System.Runtime.InteropServices;
using FlowHN.Runtime;

namespace FlowHN.Kernels;

/// <summary>
/// The cuBLAS calls we use, bound directly (ILGPU.Algorithms' bindings lack strided-batched GEMM and the math
/// mode). "cublas" resolves to the file <see cref="CublasLibrary"/> found.
/// </summary>
internal static class CublasNative
{
    private const string Lib = "cublas";
    public const int OpN = 0;
    public const int OpT = 1;
    public const int DefaultMath = 0;
    public const int Tf32TensorOpMath = 3;

    [DllImport(Lib, EntryPoint = "cublasCreate_v2")]
    public static extern int Create(out IntPtr handle);

    [DllImport(Lib, EntryPoint = "cublasDestroy_v2")]
    public static extern int Destroy(IntPtr handle);

    [DllImport(Lib, EntryPoint = "cublasSetStream_v2")]
    public static extern int SetStream(IntPtr handle, IntPtr stream);

    [DllImport(Lib, EntryPoint = "cublasSetMathMode")]
    public static extern int SetMathMode(IntPtr handle, int mode);

    [DllImport(Lib, EntryPoint = "cublasSgemmStridedBatched")]
    public static extern int SgemmStridedBatched(IntPtr handle, int transA, int transB, int m, int n, int k,
        ref float alpha, IntPtr a, int lda, long strideA, IntPtr b, int ldb, long strideB,
        ref float beta, IntPtr c, int ldc, long strideC, int batchCount);

    public static void Check(int status, string call)
    {
        if (status != 0) throw new InvalidOperationException($"cuBLAS call {call} failed with status {status}.");
    }
}

/// <summary>
/// The arguments of the column-major cuBLAS call that computes row-major C = alpha A B + beta C: as column-major
/// data, C is C^T = B^T A^T, so B comes first (m' = N, n' = M). An operand is passed as it is stored when its
/// column stride is 1 (then its row stride is the leading dimension), else transposed (its row stride is 1 and
/// the column stride leads); BLAS wants each leading dimension at least the stored matrix's row count.
/// </summary>
internal readonly record struct CublasGemmCall(int OpFirst, int LdFirst, int OpSecond, int LdSecond)
{
    /// <summary>The call for <paramref name="s"/>, or null when cuBLAS cannot take its strides.</summary>
    public static CublasGemmCall? For(in GemmShape s)
    {
        if (s.CRow < Math.Max(1, s.N)) return null;
        var b = Operand(s.BRow, s.BCol, s.K, s.N);
        var a = Operand(s.ARow, s.ACol, s.M, s.K);
        return a is { } second && b is { } first ? new CublasGemmCall(first.Op, first.Ld, second.Op, second.Ld) : null;
    }

    /// <summary>A row-major [rows, cols] operand: as stored (column-major it is its transpose) or transposed.</summary>
    private static (int Op, int Ld)? Operand(int rowStride, int colStride, int rows, int cols)
    {
        // Both tests matter for degenerate shapes: a [1, K] view of a [K, 1] tensor has strides (1, 1).
        if (colStride == 1 && rowStride >= Math.Max(1, cols)) return (CublasNative.OpN, rowStride);
        if (rowStride == 1 && colStride >= Math.Max(1, rows)) return (CublasNative.OpT, colStride);
        return null;
    }
}

/// <summary>A cuBLAS handle bound to one device; null when cuBLAS cannot be loaded.</summary>
internal sealed class CublasHandle : IDisposable
{
    private IntPtr handle;

    private CublasHandle(IntPtr handle) => this.handle = handle;

    public static CublasHandle? TryCreate(bool tf32, out string reason)
    {
        var library = CublasLibrary.Current;
        if (!library.Loaded)
        {
            reason = $"cuBLAS {library.Describe()}";
            return null;
        }
        try
        {
            int status = CublasNative.Create(out IntPtr h);
            if (status != 0)
            {
                reason = $"cublasCreate failed with status {status} ({library.Describe()}; too new for this driver?)";
                return null;
            }
            status = CublasNative.SetMathMode(h, tf32 ? CublasNative.Tf32TensorOpMath : CublasNative.DefaultMath);
            if (status != 0)
            {
                CublasNative.Destroy(h);
                reason = $"cublasSetMathMode failed with status {status}";
                return null;
            }
            reason = "";
            return new CublasHandle(h);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            reason = $"{library.Path} lacks a cuBLAS entry point ({e.Message})";
            return null;
        }
    }

    /// <summary>Row-major C = alpha A B + beta C (see <see cref="CublasGemmCall"/>).</summary>
    public void Gemm(IntPtr stream, in GemmShape s, CublasGemmCall call, int batch, IntPtr a, IntPtr b, IntPtr c)
    {
        CublasNative.Check(CublasNative.SetStream(handle, stream), "cublasSetStream");
        float alpha = s.Alpha, beta = s.Beta;
        CublasNative.Check(CublasNative.SgemmStridedBatched(handle, call.OpFirst, call.OpSecond, s.N, s.M, s.K, ref alpha,
            b, call.LdFirst, s.BBatch, a, call.LdSecond, s.ABatch, ref beta, c, s.CRow, s.CBatch, batch), "cublasSgemmStridedBatched");
    }

    public void Dispose()
    {
        if (handle != IntPtr.Zero) CublasNative.Destroy(handle);
        handle = IntPtr.Zero;
    }
}
