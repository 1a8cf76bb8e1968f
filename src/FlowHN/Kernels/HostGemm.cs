using System.Numerics;

namespace FlowHN.Kernels;

/// <summary>
/// The CPU accelerator's matrix product: SIMD (System.Numerics.Vector) on the accelerator's host memory,
/// rows split across cores. It plays the role cuBLAS plays on CUDA: the ILGPU tiled kernel synchronises its
/// group at every K tile, and on the CPU accelerator each barrier is an OS-thread barrier costing microseconds,
/// which made it 10-50x slower than this loop. Each task owns a block of 4 rows of C and keeps a 4 x 2-vector
/// register block of accumulators over the whole K loop.
/// </summary>
internal static unsafe class HostGemm
{
    private const int Rows = 4;

    public static void Run(float* a, float* b, float* c, in GemmShape shape, int batch)
    {
        var s = shape;
        for (int batchIndex = 0; batchIndex < batch; batchIndex++)
        {
            float* ab = a + batchIndex * s.ABatch, bb = b + batchIndex * s.BBatch, cb = c + batchIndex * s.CBatch;
            // B rows must be contiguous for vector loads: pack a transposed B once per product.
            float[]? packed = s.BCol == 1 ? null : Pack(bb, s);
            fixed (float* packedPtr = packed)
            {
                float* bRows = packed is null ? bb : packedPtr;
                int bRowStride = packed is null ? s.BRow : s.N;
                nint aAddress = (nint)ab, bAddress = (nint)bRows, cAddress = (nint)cb;
                int blocks = (s.M + Rows - 1) / Rows;
                Parallel.For(0, blocks, block =>
                    RowBlock((float*)aAddress, (float*)bAddress, bRowStride, (float*)cAddress, s, block * Rows));
            }
        }
    }

    private static float[] Pack(float* b, in GemmShape s)
    {
        var packed = new float[(long)s.K * s.N];
        for (int k = 0; k < s.K; k++)
            for (int n = 0; n < s.N; n++) packed[(long)k * s.N + n] = b[(long)k * s.BRow + (long)n * s.BCol];
        return packed;
    }

    private static void RowBlock(float* a, float* b, int bRowStride, float* c, GemmShape s, int row0)
    {
        int rows = Math.Min(Rows, s.M - row0);
        int width = Vector<float>.Count;
        int n = 0;
        if (rows == Rows)
            for (; n + 2 * width <= s.N; n += 2 * width) FullBlock(a, b, bRowStride, c, s, row0, n);
        for (; n < s.N; n++) // ragged columns and rows: plain dot products
            for (int r = 0; r < rows; r++)
            {
                float sum = 0f;
                float* ar = a + (long)(row0 + r) * s.ARow;
                for (int k = 0; k < s.K; k++) sum += ar[(long)k * s.ACol] * b[(long)k * bRowStride + n];
                Store(c + (long)(row0 + r) * s.CRow + n, sum, s);
            }
    }

    private static void FullBlock(float* a, float* b, int bRowStride, float* c, in GemmShape s, int row0, int n)
    {
        int width = Vector<float>.Count;
        Vector<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector<float> c20 = default, c21 = default, c30 = default, c31 = default;
        float* a0 = a + (long)row0 * s.ARow, a1 = a0 + s.ARow, a2 = a1 + s.ARow, a3 = a2 + s.ARow;
        for (int k = 0; k < s.K; k++)
        {
            float* bk = b + (long)k * bRowStride + n;
            var b0 = *(Vector<float>*)bk;
            var b1 = *(Vector<float>*)(bk + width);
            long ak = (long)k * s.ACol;
            var x0 = new Vector<float>(a0[ak]);
            var x1 = new Vector<float>(a1[ak]);
            var x2 = new Vector<float>(a2[ak]);
            var x3 = new Vector<float>(a3[ak]);
            c00 = Vector.FusedMultiplyAdd(x0, b0, c00); c01 = Vector.FusedMultiplyAdd(x0, b1, c01);
            c10 = Vector.FusedMultiplyAdd(x1, b0, c10); c11 = Vector.FusedMultiplyAdd(x1, b1, c11);
            c20 = Vector.FusedMultiplyAdd(x2, b0, c20); c21 = Vector.FusedMultiplyAdd(x2, b1, c21);
            c30 = Vector.FusedMultiplyAdd(x3, b0, c30); c31 = Vector.FusedMultiplyAdd(x3, b1, c31);
        }
        StoreVectors(c + (long)row0 * s.CRow + n, c00, c01, s);
        StoreVectors(c + (long)(row0 + 1) * s.CRow + n, c10, c11, s);
        StoreVectors(c + (long)(row0 + 2) * s.CRow + n, c20, c21, s);
        StoreVectors(c + (long)(row0 + 3) * s.CRow + n, c30, c31, s);
    }

    private static void StoreVectors(float* target, Vector<float> v0, Vector<float> v1, in GemmShape s)
    {
        int width = Vector<float>.Count;
        var alpha = new Vector<float>(s.Alpha);
        if (s.Beta == 0f)
        {
            *(Vector<float>*)target = v0 * alpha;
            *(Vector<float>*)(target + width) = v1 * alpha;
            return;
        }
        var beta = new Vector<float>(s.Beta);
        *(Vector<float>*)target = v0 * alpha + *(Vector<float>*)target * beta;
        *(Vector<float>*)(target + width) = v1 * alpha + *(Vector<float>*)(target + width) * beta;
    }

    private static void Store(float* target, float value, in GemmShape s) =>
        *target = s.Beta == 0f ? s.Alpha * value : s.Alpha * value + s.Beta * *target;
}
