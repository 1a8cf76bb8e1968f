using ILGPU;
using ILGPU.Algorithms;

namespace FlowHN.Kernels;

/// <summary>The shared-memory layout, tile staging, mask bounds and inner products of the attention kernels.</summary>
internal static partial class AttentionKernels
{
    /// <summary>Rows (keys or queries) a lane scores per pass of <see cref="Dot4"/>.</summary>
    private const int Block = 4;

    /// <summary>Floats between consecutive rows of a staged tile: odd, so lanes reading different rows at one dim hit different banks.</summary>
    public static int TileStride(int headDim) => headDim | 1;

    /// <summary>Shared floats per row of each kernel (odd, so neighbouring rows start in different banks).</summary>
    public static int ForwardRowFloats(int headDim, int tile) => (2 * headDim + tile) | 1;
    public static int QueryGradRowFloats(int headDim, int tile) => (3 * headDim + tile) | 1;
    public static int KeyValueGradRowFloats(int headDim, int tile) => (4 * headDim + 2 * tile) | 1;

    /// <summary>Shared floats of a group's staged tiles: K and V (forward, dQ); Q, dO, lse and delta (dK/dV).</summary>
    public static int ForwardTileFloats(int headDim, int tile) => 2 * tile * TileStride(headDim);
    public static int QueryGradTileFloats(int headDim, int tile) => 2 * tile * TileStride(headDim);
    public static int KeyValueGradTileFloats(int headDim, int tile) => 2 * tile * TileStride(headDim) + 2 * tile;

    /// <summary>Elements spanned by <paramref name="rows"/> rows of <paramref name="d"/> floats, <paramref name="stride"/> apart.</summary>
    private static int RowsSpan(int rows, int stride, int d) => (rows - 1) * stride + d;

    /// <summary>
    /// The group copies <paramref name="rows"/> rows of <paramref name="d"/> floats into a padded tile: thread x
    /// copies element x, so a warp reads consecutive floats of a row (coalesced). Caller places the barrier.
    /// </summary>
    private static void Stage(ArrayView<float> source, int sourceStride, ArrayView<float> tile, int tileStride, int rows, int d,
        int thread, int groupSize)
    {
        int total = rows * d;
        for (int x = thread; x < total; x += groupSize)
        {
            int r = x / d, e = x - r * d;
            tile[r * tileStride + e] = source[r * sourceStride + e];
        }
    }

    /// <summary>
    /// Whether positions never decrease (binary searches are valid then). Staged, the group checks together and
    /// every thread gets the answer; unstaged, each thread checks alone (once per launch, no barrier).
    /// </summary>
    private static bool IsSorted(ArrayView<int> positions, int n, ArrayView<float> scratch, bool together)
    {
        int first = together ? Group.IdxX : 0, step = together ? Group.DimX : 1;
        float descents = 0f;
        for (int i = first + 1; i < n; i += step)
            if (positions[i - 1] > positions[i]) descents = 1f;
        return (together ? GroupReduce.Max(descents, scratch, Group.DimX) : descents) == 0f;
    }

    /// <summary>One past the last key visible at query position qp (keys after it are all invisible).</summary>
    private static int VisibleEnd(ArrayView<int> kPos, int lk, int qp, bool sorted)
    {
        if (sorted)
        {
            int low = 0, high = lk; // the first key after qp
            while (low < high)
            {
                int middle = (low + high) >> 1;
                if (kPos[middle] <= qp) low = middle + 1;
                else high = middle;
            }
            return low;
        }
        int end = lk;
        while (end > 0 && kPos[end - 1] > qp) end--;
        return end;
    }

    /// <summary>The first query that sees key position kp (queries before it are all blind to the key).</summary>
    private static int FirstSeeing(ArrayView<int> qPos, int lq, int kp, bool sorted)
    {
        if (sorted)
        {
            int low = 0, high = lq; // the first query at or after kp
            while (low < high)
            {
                int middle = (low + high) >> 1;
                if (qPos[middle] < kp) low = middle + 1;
                else high = middle;
            }
            return low;
        }
        int start = 0;
        while (start < lq && qPos[start] < kp) start++;
        return start;
    }

    /// <summary>The group-wide max of a per-row count when the group walks tiles together; the thread's own otherwise.</summary>
    private static int UniformMax(int value, ArrayView<float> scratch, bool together) =>
        together ? (int)GroupReduce.Max(value, scratch, Group.DimX) : value;

    /// <summary>
    /// acc[e] = acc[e] * rescale + sum_t weights[w + t] * rows[at + t * stride + e] over the lane's dims, four
    /// dims at a time so four independent sums are in flight and each weight is loaded once per four dims.
    /// </summary>
    private static void AccumulateRows(ArrayView<float> acc, float rescale, ArrayView<float> weights, int w, int count,
        ArrayView<float> rows, int at, int stride, int lane, int lanes, int d)
    {
        int e = lane;
        for (; e + 3 * lanes < d; e += 4 * lanes)
        {
            float a0 = acc[e] * rescale, a1 = acc[e + lanes] * rescale;
            float a2 = acc[e + 2 * lanes] * rescale, a3 = acc[e + 3 * lanes] * rescale;
            int r = at + e;
            for (int t = 0; t < count; t++, r += stride)
            {
                float weight = weights[w + t];
                a0 += weight * rows[r];
                a1 += weight * rows[r + lanes];
                a2 += weight * rows[r + 2 * lanes];
                a3 += weight * rows[r + 3 * lanes];
            }
            acc[e] = a0;
            acc[e + lanes] = a1;
            acc[e + 2 * lanes] = a2;
            acc[e + 3 * lanes] = a3;
        }
        for (; e < d; e += lanes)
        {
            float a = acc[e] * rescale;
            int r = at + e;
            for (int t = 0; t < count; t++, r += stride) a += weights[w + t] * rows[r];
            acc[e] = a;
        }
    }

    /// <summary>How many of the lane's next <see cref="Block"/> rows (t, t + lanes, ...) lie below count.</summary>
    private static int BlockSize(int t, int count, int lanes) => XMath.Min(Block, (count - t + lanes - 1) / lanes);

    /// <summary>
    /// a . b[at + u * step ..] for u &lt; n (n &lt;= 4) in one pass, so each element of a is loaded once for up
    /// to four products. Unused slots re-read row 0 and are ignored. 32-bit offsets into a tile's sub-view.
    /// </summary>
    private static Float4 Dot4(ArrayView<float> a, ArrayView<float> b, int at, int step, int n, int d)
    {
        // Offsets carried by the loop (not recomputed from n and step at each dim).
        int i0 = at, i1 = n > 1 ? at + step : at, i2 = n > 2 ? at + 2 * step : at, i3 = n > 3 ? at + 3 * step : at;
        Float4 r = default;
        for (int e = 0; e < d; e++, i0++, i1++, i2++, i3++)
        {
            float x = a[e];
            r.X += x * b[i0];
            r.Y += x * b[i1];
            r.Z += x * b[i2];
            r.W += x * b[i3];
        }
        return r;
    }
}

/// <summary>Four floats (results of <c>Dot4</c>).</summary>
internal struct Float4
{
    public float X, Y, Z, W;

    public readonly float Get(int u) => u == 0 ? X : u == 1 ? Y : u == 2 ? Z : W;
}
