using System.Runtime.InteropServices;
using FlowHN.Runtime;

namespace FlowHN.Kernels;

/// <summary>
/// The cuBLAS calls we use, bound directly (ILGPU.Algorithms' bindings lack strided-batched GEMM and the math
/// mode). "cublas" resolves to libcublas.so.N through <see cref="NativeLibraries"/>.
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

/// <summary>A cuBLAS handle bound to one device; null when cuBLAS cannot be loaded.</summary>
internal sealed class CublasHandle : IDisposable
{
    private IntPtr handle;

    private CublasHandle(IntPtr handle) => this.handle = handle;

    public static CublasHandle? TryCreate(bool tf32, out string reason)
    {
        try
        {
            int status = CublasNative.Create(out IntPtr h);
            if (status != 0)
            {
                reason = $"cublasCreate failed with status {status}";
                return null;
            }
            CublasNative.Check(CublasNative.SetMathMode(h, tf32 ? CublasNative.Tf32TensorOpMath : CublasNative.DefaultMath),
                "cublasSetMathMode");
            reason = "";
            return new CublasHandle(h);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            reason = $"cuBLAS library not found (tried {string.Join(", ", NativeLibraries.CublasCandidates)})";
            return null;
        }
    }

    /// <summary>
    /// Row-major C = alpha A B + beta C through column-major cuBLAS: C^T = B^T A^T, so B comes first.
    /// Each operand must have one unit stride (checked by the caller).
    /// </summary>
    public void Gemm(IntPtr stream, in GemmShape s, int batch, IntPtr a, IntPtr b, IntPtr c)
    {
        CublasNative.Check(CublasNative.SetStream(handle, stream), "cublasSetStream");
        // Column-major, B^T is n x k: stored as-is when B is row-major (BCol == 1), else transposed.
        int opB = s.BCol == 1 ? CublasNative.OpN : CublasNative.OpT;
        int ldb = s.BCol == 1 ? s.BRow : s.BCol;
        int opA = s.ACol == 1 ? CublasNative.OpN : CublasNative.OpT;
        int lda = s.ACol == 1 ? s.ARow : s.ACol;
        float alpha = s.Alpha, beta = s.Beta;
        CublasNative.Check(CublasNative.SgemmStridedBatched(handle, opB, opA, s.N, s.M, s.K, ref alpha,
            b, ldb, s.BBatch, a, lda, s.ABatch, ref beta, c, s.CRow, s.CBatch, batch), "cublasSgemmStridedBatched");
    }

    public void Dispose()
    {
        if (handle != IntPtr.Zero) CublasNative.Destroy(handle);
        handle = IntPtr.Zero;
    }
}
