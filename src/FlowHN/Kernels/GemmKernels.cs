using ILGPU;

namespace FlowHN.Kernels;

/// <summary>
/// C = alpha * A * B + beta * C for row-major-or-transposed operands, batched. Element (m, k) of A is at
/// m * ARow + k * ACol (+ batch * ABatch), likewise B (k, n) and C (m, n); so NN, NT and TN are only strides.
/// </summary>
internal readonly record struct GemmShape
{
    public int M { get; init; }
    public int N { get; init; }
    public int K { get; init; }
    public int ARow { get; init; }
    public int ACol { get; init; }
    public int BRow { get; init; }
    public int BCol { get; init; }
    public int CRow { get; init; }
    public long ABatch { get; init; }
    public long BBatch { get; init; }
    public long CBatch { get; init; }
    public float Alpha { get; init; }
    public float Beta { get; init; }
}

/// <summary>
/// Tiled matrix product: a group computes a (4*TY) x (4*TX) tile of C, each thread a 4x4 register block
/// whose rows are ty + i*TY and columns tx + j*TX, so neighbouring threads touch neighbouring shared-memory
/// words (no bank conflicts) and neighbouring C elements (coalesced stores). Tiles of A and B along K are
/// staged in shared memory with one float of padding per row; each tile is loaded in the order of its unit
/// stride so global reads coalesce for every transpose case. Group size and the K tile are launch parameters.
/// </summary>
internal static class GemmKernels
{
    private const int Block = 4; // register block per thread along M and along N

    public static void GemmTiled(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, int tileK)
    {
        var shared = SharedMemory.GetDynamic<float>();
        int tx = Group.IdxX, ty = Group.IdxY;
        int threadsX = Group.DimX, threadsY = Group.DimY;
        int tileM = Block * threadsY, tileN = Block * threadsX;
        int strideA = tileM + 1, strideB = tileN + 1;
        var tileA = shared.SubView(0, tileK * strideA);        // tileA[kk * strideA + mm]
        var tileB = shared.SubView(tileK * strideA, tileK * strideB); // tileB[kk * strideB + nn]
        int m0 = Grid.IdxY * tileM, n0 = Grid.IdxX * tileN;
        long batch = Grid.IdxZ;
        long aBase = batch * s.ABatch, bBase = batch * s.BBatch, cBase = batch * s.CBatch;
        int thread = ty * threadsX + tx, threads = threadsX * threadsY;

        float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        float c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;

        for (int k0 = 0; k0 < s.K; k0 += tileK)
        {
            for (int idx = thread; idx < tileM * tileK; idx += threads)
            {
                // Walk along A's unit-stride axis first so consecutive threads read consecutive addresses.
                int mm = s.ACol == 1 ? idx / tileK : idx % tileM;
                int kk = s.ACol == 1 ? idx % tileK : idx / tileM;
                int m = m0 + mm, k = k0 + kk;
                tileA[kk * strideA + mm] = m < s.M && k < s.K ? a[aBase + (long)m * s.ARow + (long)k * s.ACol] : 0f;
            }
            for (int idx = thread; idx < tileN * tileK; idx += threads)
            {
                int nn = s.BCol == 1 ? idx % tileN : idx / tileK;
                int kk = s.BCol == 1 ? idx / tileN : idx % tileK;
                int n = n0 + nn, k = k0 + kk;
                tileB[kk * strideB + nn] = n < s.N && k < s.K ? b[bBase + (long)k * s.BRow + (long)n * s.BCol] : 0f;
            }
            Group.Barrier();

            for (int kk = 0; kk < tileK; kk++)
            {
                int rowA = kk * strideA + ty, rowB = kk * strideB + tx;
                float a0 = tileA[rowA], a1 = tileA[rowA + threadsY], a2 = tileA[rowA + 2 * threadsY], a3 = tileA[rowA + 3 * threadsY];
                float b0 = tileB[rowB], b1 = tileB[rowB + threadsX], b2 = tileB[rowB + 2 * threadsX], b3 = tileB[rowB + 3 * threadsX];
                c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
                c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
                c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
                c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
            }
            Group.Barrier();
        }

        int r0 = m0 + ty, col0 = n0 + tx;
        StoreRow(c, s, cBase, r0, col0, threadsX, c00, c01, c02, c03);
        StoreRow(c, s, cBase, r0 + threadsY, col0, threadsX, c10, c11, c12, c13);
        StoreRow(c, s, cBase, r0 + 2 * threadsY, col0, threadsX, c20, c21, c22, c23);
        StoreRow(c, s, cBase, r0 + 3 * threadsY, col0, threadsX, c30, c31, c32, c33);
    }

    private static void StoreRow(ArrayView<float> c, GemmShape s, long cBase, int row, int col0, int step,
        float v0, float v1, float v2, float v3)
    {
        if (row >= s.M) return;
        long rowBase = cBase + (long)row * s.CRow;
        Store(c, s, rowBase, col0, v0);
        Store(c, s, rowBase, col0 + step, v1);
        Store(c, s, rowBase, col0 + 2 * step, v2);
        Store(c, s, rowBase, col0 + 3 * step, v3);
    }

    private static void Store(ArrayView<float> c, GemmShape s, long rowBase, int col, float value)
    {
        if (col >= s.N) return;
        long i = rowBase + col;
        // beta == 0 must not read C: it may hold garbage (NaN) from a recycled block.
        c[i] = s.Beta == 0f ? s.Alpha * value : s.Alpha * value + s.Beta * c[i];
    }
}
