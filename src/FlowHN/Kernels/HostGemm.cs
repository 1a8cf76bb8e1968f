using System.Buffers;
using System.Numerics;

namespace FlowHN.Kernels;

/// <summary>
/// The CPU accelerator's matrix product: SIMD (System.Numerics.Vector) on the accelerator's host memory,
/// rows split across cores. It plays the role cuBLAS plays on CUDA: the ILGPU tiled kernel synchronises its
/// group at every K tile, and on the CPU accelerator each barrier is an OS-thread barrier costing microseconds,
/// which made it 10-50x slower than this loop. Each task owns a block of 4 rows of C and keeps a 4 x 2-vector
/// register block of accumulators over the whole K loop, reading B from packed column panels.
/// </summary>
internal static unsafe class HostGemm
{
    private const int Rows = 4;

    public static void Run(float* a, float* b, float* c, in GemmShape shape, int batch)
    {
        var s = shape;
        int width = Vector<float>.Count, panelWidth = 2 * width;
        int panels = s.N / panelWidth;
        // B's full-width column panels are packed contiguously ([K x panelWidth] each) so the inner loop reads
        // sequential memory whatever B's strides are; the ragged columns are read in place.
        var packed = ArrayPool<float>.Shared.Rent(Math.Max(1, panels * s.K * panelWidth));
        fixed (float* packedPtr = packed)
        {
            nint packedAddress = (nint)packedPtr;
            for (int batchIndex = 0; batchIndex < batch; batchIndex++)
            {
                nint ab = (nint)(a + batchIndex * s.ABatch), bb = (nint)(b + batchIndex * s.BBatch), cb = (nint)(c + batchIndex * s.CBatch);
                Parallel.For(0, panels, p => PackPanel((float*)bb, (float*)packedAddress, s, p, panelWidth));
                int blocks = (s.M + Rows - 1) / Rows;
                Parallel.For(0, blocks, block =>
                    RowBlock((float*)ab, (float*)bb, (float*)packedAddress, (float*)cb, s, block * Rows, panels, panelWidth));
            }
        }
        ArrayPool<float>.Shared.Return(packed);
    }

    private static void PackPanel(float* b, float* packed, in GemmShape s, int panel, int panelWidth)
    {
        float* target = packed + (long)panel * s.K * panelWidth;
        int n0 = panel * panelWidth;
        for (int k = 0; k < s.K; k++)
        {
            float* row = b + (long)k * s.BRow;
            for (int j = 0; j < panelWidth; j++) target[(long)k * panelWidth + j] = row[(long)(n0 + j) * s.BCol];
        }
    }

    private static void RowBlock(float* a, float* b, float* packed, float* c, in GemmShape s, int row0, int panels, int panelWidth)
    {
        int rows = Math.Min(Rows, s.M - row0);
        int n = 0;
        if (rows == Rows)
            for (int p = 0; p < panels; p++, n += panelWidth) FullBlock(a, packed + (long)p * s.K * panelWidth, panelWidth, c, s, row0, n);
        for (int col = rows == Rows ? n : 0; col < s.N; col++) // ragged columns and rows: plain dot products
            for (int r = 0; r < rows; r++)
            {
                float sum = 0f;
                float* ar = a + (long)(row0 + r) * s.ARow;
                for (int k = 0; k < s.K; k++) sum += ar[(long)k * s.ACol] * b[(long)k * s.BRow + (long)col * s.BCol];
                Store(c + (long)(row0 + r) * s.CRow + col, sum, s);
            }
    }

    private static void FullBlock(float* a, float* b, int bRowStride, float* c, in GemmShape s, int row0, int n)
    {
        // b points at the packed panel: row k of the panel is at b + k * bRowStride, columns n .. n + panelWidth.
        int width = Vector<float>.Count;
        Vector<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector<float> c20 = default, c21 = default, c30 = default, c31 = default;
        float* a0 = a + (long)row0 * s.ARow, a1 = a0 + s.ARow, a2 = a1 + s.ARow, a3 = a2 + s.ARow;
        long aStep = s.ACol; // locals, so the loop keeps everything in registers
        int depth = s.K;
        float* bk = b;
        for (int k = 0; k < depth; k++, bk += bRowStride, a0 += aStep, a1 += aStep, a2 += aStep, a3 += aStep)
        {
            var b0 = *(Vector<float>*)bk;
            var b1 = *(Vector<float>*)(bk + width);
            var x0 = new Vector<float>(*a0);
            var x1 = new Vector<float>(*a1);
            var x2 = new Vector<float>(*a2);
            var x3 = new Vector<float>(*a3);
            c00 = Vector.FusedMultiplyAdd(x0, b0, c00); c01 = Vector.FusedMultiplyAdd(x0, b1, c01);
            c10 = Vector.FusedMultiplyAdd(x1, b0, c10); c11 = Vector.FusedMultiplyAdd(x1, b1, c11);
            c20 = Vector.FusedMultiplyAdd(x2, b0, c20); c21 = Vector.FusedMultiplyAdd(x2, b1, c21);
            c30 = Vector.FusedMultiplyAdd(x3, b0, c30); c31 = Vector.FusedMultiplyAdd(x3, b1, c31);
        }
        // (a0..a3 have walked past the rows; the stores below use c only.)
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
