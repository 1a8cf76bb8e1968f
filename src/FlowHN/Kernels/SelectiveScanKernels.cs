using ILGPU;
using ILGPU.Algorithms;

namespace FlowHN.Kernels;

/// <summary>
/// Sizes of one selective scan. u, delta, z and y are [Batch, Length, Channels]; B and C are [Batch, Length,
/// States]; A_log is [Channels, States]; deltaBias and D are [Channels]; the initial and final states are
/// [Batch, Channels, States]. The rest is launch geometry.
/// </summary>
internal readonly record struct SelectiveScanShape
{
    public int Batch { get; init; }
    public int Length { get; init; }
    public int Channels { get; init; }
    public int States { get; init; }
    /// <summary>Timesteps between saved states; the backward recomputes this many states per step back.</summary>
    public int Chunk { get; init; }
    /// <summary>1 when an initial state is given (else the scan starts from zero).</summary>
    public int HasInitial { get; init; }
    /// <summary>Backward: threads (consecutive channels) whose dB/dC contributions are summed by shuffles.</summary>
    public int Lanes { get; init; }
    /// <summary>Backward: channels each thread walks one after the other, adding into the same partial row.</summary>
    public int ChannelsPerThread { get; init; }
    /// <summary>
    /// Forward: lanes per (batch, channel) of the lanes-over-states kernel (d_state rounded up to a power of two),
    /// or 0 for the per-channel kernel (the CPU accelerator's, whose warps are narrower than d_state).
    /// </summary>
    public int StateLanes { get; init; }

    public int Chunks => (Length + Chunk - 1) / Chunk;
    public int ChannelsPerBlock => Lanes * ChannelsPerThread;
    /// <summary>Channel blocks: each writes one partial dB/dC row per (batch, timestep).</summary>
    public int Blocks => (Channels + ChannelsPerBlock - 1) / ChannelsPerBlock;
    public int Pairs => Batch * Channels;
    /// <summary>Backward work items, one (batch, channel block) each, handled by <see cref="Lanes"/> threads.</summary>
    public int BackwardUnits => Batch * Blocks;
    /// <summary>Elements of B, C and of one block's partial dB or dC.</summary>
    public long StateRowsLength => (long)Batch * Length * States;
    /// <summary>Per (batch, channel) partial sums of the A_log, D and deltaBias gradients.</summary>
    public int ParamSlots => States + 2;
}

/// <summary>The scan's inputs as views (Initial is a dummy view when the shape has none).</summary>
internal struct SelectiveScanInputs
{
    public ArrayView<float> U, Delta, DeltaBias, ALog, B, C, DSkip, Z, Initial;
}

/// <summary>
/// Where the backward writes: du, ddelta, dz and dInitial accumulate (+=); the partials are scratch summed by
/// <see cref="SelectiveScanKernels.SelectiveScanSumBlocks"/> and <see cref="SelectiveScanKernels.SelectiveScanParamGradFinish"/>.
/// </summary>
internal struct ScanBackwardTargets
{
    public ArrayView<float> DU, DDelta, DZ, DInitial;
    /// <summary>[Blocks, Batch, Length, States] each.</summary>
    public ArrayView<float> PartialB, PartialC;
    /// <summary>[Batch, States + 2, Channels]: A_log per state, then D, then deltaBias.</summary>
    public ArrayView<float> ParamPartial;
}

/// <summary>
/// Mamba-1 selective scan with dt = softplus(delta + deltaBias), A = -exp(A_log):
/// h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t, y_t = (C_t . h_t + D u_t) silu(z_t), per (batch, channel).
/// <para>
/// GPUs run the lanes-over-states kernels (<see cref="SelectiveScanForwardLanes"/>,
/// <see cref="SelectiveScanBackwardLanes"/>); the per-channel kernels below are the CPU accelerator's, whose
/// warps are narrower than d_state and where every shuffle is an OS-thread barrier.
/// </para>
/// <para>
/// Work split. A thread owns one (batch, channel) pair and walks the whole sequence with its States values
/// of h in local memory (registers on a GPU where the compiler can keep them there). Consecutive threads take
/// consecutive channels, so every u/delta/z/y access of a warp is one contiguous segment of a [B, L, D] row and
/// the B/C loads of a warp are one broadcast address. No barrier or shared memory is needed, which also makes
/// the CPU accelerator run it at the speed of a plain loop. h is never written per timestep: the forward saves
/// only the state at the start of every chunk ([Batch, Chunks, States, Channels], channel fastest so the
/// stores coalesce) and the final state.
/// </para>
/// <para>
/// Backward. Chunks are walked last to first. For each, the thread recomputes the chunk's states from the
/// saved boundary state into local memory ((Chunk + 1) x States floats), then runs the adjoint recurrence
/// backwards through the chunk: dh_{t-1} = exp(dt_t A) (dh_t + g_t C_t) with g_t = dy_t silu(z_t). u, delta and
/// z gradients are written per step; A_log, D and deltaBias gradients are summed over time in registers and
/// written once per (batch, channel), then summed over the batch by <see cref="ParamGradFinish"/>. dB and dC are
/// sums over channels: the Lanes threads of a block (consecutive channels, within one warp) add their
/// contributions with XOR shuffles, each thread adds its ChannelsPerThread channels one after the other, and
/// lane 0 writes one partial row per (block, batch, timestep); <see cref="SumBlocks"/> then adds the blocks in
/// a fixed order. The CPU accelerator uses one lane and many channels per thread (no shuffle, so no barrier);
/// test presets more lanes. No atomics: results are bitwise reproducible.
/// </para>
/// </summary>
internal static partial class SelectiveScanKernels
{
    /// <summary>The largest d_state the local arrays hold.</summary>
    public const int MaxStates = 32;
    /// <summary>
    /// Local floats for one chunk's recomputed states and outputs (see <see cref="ChunkFloats"/>): 64 steps at
    /// d_state 16, 32 at d_state 32.
    /// </summary>
    public const int ChunkStateFloats = 1104;

    /// <summary>Bits of the forward's <c>outputs</c> argument.</summary>
    public const int SaveBoundaries = 1, WriteFinal = 2;

    /// <summary>y = the scan's output; saves chunk-boundary states and the final state when asked.</summary>
    public static void SelectiveScanForward(SelectiveScanShape s, SelectiveScanInputs p, ArrayView<float> y, ArrayView<float> boundaries,
        ArrayView<float> final, int outputs)
    {
        var h = LocalMemory.Allocate<float>(MaxStates);
        var a = LocalMemory.Allocate<float>(MaxStates);
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        int channels = s.Channels, n = s.States, length = s.Length, chunk = s.Chunk, chunks = s.Chunks, pairs = s.Pairs;
        bool save = (outputs & SaveBoundaries) != 0;
        for (int pair = first; pair < pairs; pair += stride)
        {
            int d = pair % channels, b = pair / channels;
            LoadDecayRates(p, a, d, n);
            long stateAt = (long)pair * n;
            for (int i = 0; i < n; i++) h[i] = s.HasInitial != 0 ? p.Initial[stateAt + i] : 0f;
            float dSkip = p.DSkip[d], deltaBias = p.DeltaBias[d];
            for (int c = 0; c < chunks; c++)
            {
                if (save)
                {
                    long boundary = ((long)b * chunks + c) * n * channels + d;
                    for (int i = 0; i < n; i++) boundaries[boundary + (long)i * channels] = h[i];
                }
                int t1 = XMath.Min(length, (c + 1) * chunk);
                for (int t = c * chunk; t < t1; t++)
                {
                    long at = ((long)b * length + t) * channels + d, row = ((long)b * length + t) * n;
                    float u = p.U[at], dt = Softplus(p.Delta[at] + deltaBias), dtu = dt * u, dot = 0f;
                    for (int i = 0; i < n; i++)
                    {
                        float hi = XMath.Exp(dt * a[i]) * h[i] + dtu * p.B[row + i];
                        h[i] = hi;
                        dot += p.C[row + i] * hi;
                    }
                    float z = p.Z[at];
                    y[at] = (dot + dSkip * u) * z / (1f + XMath.Exp(-z));
                }
            }
            if ((outputs & WriteFinal) != 0)
                for (int i = 0; i < n; i++) final[stateAt + i] = h[i];
        }
    }

    /// <summary>target[i] += sum over blocks k of partial[k * count + i], in block order.</summary>
    public static void SelectiveScanSumBlocks(long count, int blocks, ArrayView<float> partial, ArrayView<float> target)
    {
        long first = Grid.GlobalIndex.X, stride = (long)Grid.DimX * Group.DimX;
        for (long i = first; i < count; i += stride)
        {
            float sum = 0f;
            long at = i;
            for (int k = 0; k < blocks; k++, at += count) sum += partial[at];
            target[i] += sum;
        }
    }

    /// <summary>dA_log, dD and dDeltaBias += the parameter partials summed over the batch, in batch order.</summary>
    public static void SelectiveScanParamGradFinish(SelectiveScanShape s, ArrayView<float> paramPartial, ArrayView<float> dALog,
        ArrayView<float> dSkip, ArrayView<float> dDeltaBias)
    {
        int first = Grid.GlobalIndex.X, stride = Grid.DimX * Group.DimX;
        int channels = s.Channels, n = s.States, slots = s.ParamSlots, count = slots * channels, batch = s.Batch;
        long batchStride = (long)slots * channels;
        for (int i = first; i < count; i += stride)
        {
            int d = i % channels, j = i / channels;
            float sum = 0f;
            long at = i;
            for (int b = 0; b < batch; b++, at += batchStride) sum += paramPartial[at];
            if (j < n) dALog[d * n + j] += sum;
            else if (j == n) dSkip[d] += sum;
            else dDeltaBias[d] += sum;
        }
    }

    /// <summary>a[i] = A[d, i] = -exp(A_log[d, i]).</summary>
    private static void LoadDecayRates(SelectiveScanInputs p, ArrayView<float> a, int d, int n)
    {
        long at = (long)d * n;
        for (int i = 0; i < n; i++) a[i] = -XMath.Exp(p.ALog[at + i]);
    }

    private static float Softplus(float x) => default(SoftplusFunction).Forward(x);

    private static float Sigmoid(float x) => 1f / (1f + XMath.Exp(-x));
}
