using ILGPU;
using ILGPU.Algorithms;

namespace FlowHN.Kernels;

/// <summary>
/// The backward with lanes over states, the GPU's: like <see cref="SelectiveScanForwardLanes"/>, StateLanes lanes
/// take one (batch, channel) pair and lane i owns state i, its adjoint dh_i and its A_log gradient in registers.
/// <para>
/// A unit (batch, channel block) is Lanes pairs of consecutive channels side by side in one warp, each thread
/// walking ChannelsPerThread such slices one after the other. Per chunk (last to first) the group recomputes the
/// chunk's states from the saved boundary into shared memory, one column per thread (row j + 1 = h after step j,
/// so a warp's accesses are one contiguous row), writing dz on the way (it needs only the output C . h), then
/// runs the adjoint recurrence backwards through the chunk. Per step, dt, u and g = dy silu(z) come from the lane
/// that loaded that timestep (as in the forward), du and the dt gradient are sums over states (XOR shuffles over
/// the pair's lanes), and dB_i, dC_i are sums over channels: lane i adds its value over the unit's pairs by XOR
/// shuffles across pairs (never across states) and the unit's first pair writes the partial row, which
/// <see cref="SelectiveScanSumBlocks"/> adds over blocks in a fixed order. No atomics: bitwise reproducible.
/// </para>
/// </summary>
internal static partial class SelectiveScanKernels
{
    /// <summary>Gradients of the scan for output gradient dy; shared memory: (Chunk + 1) floats per thread.</summary>
    public static void SelectiveScanBackwardLanes(SelectiveScanShape s, SelectiveScanInputs p, ArrayView<float> dy,
        ArrayView<float> boundaries, ScanBackwardTargets g)
    {
        int stateLanes = s.StateLanes, unitLanes = s.Lanes * stateLanes, units = s.BackwardUnits, blocks = s.Blocks;
        var loop = RowLoop.Of(unitLanes);
        // Fetched once in the kernel and handed down: the CPU accelerator gave helpers that fetch it themselves
        // a view of other memory.
        var states = SharedMemory.GetDynamic<float>();
        var lane = new PairLane
        {
            State = loop.Lane & (stateLanes - 1),
            Pair = loop.Lane / stateLanes,
            GroupStart = Warp.LaneIdx - (loop.Lane & (stateLanes - 1)),
        };
        // Every loop bound is the same for all threads of a group, so every shuffle sees every lane.
        for (int firstUnit = loop.Start; firstUnit < units; firstUnit += loop.Step)
        {
            int unit = firstUnit + loop.Offset;
            bool active = unit < units;
            int b = active ? unit / blocks : 0, block = unit % blocks;
            for (int slice = 0; slice < s.ChannelsPerThread; slice++)
            {
                int d = (block * s.ChannelsPerThread + slice) * s.Lanes + lane.Pair;
                var channel = new ScanChannel { Batch = b, Channel = d, Block = block, Slice = slice, Lane = lane.Pair,
                    Active = active, Live = active && d < s.Channels };
                BackwardPairLanes(s, p, dy, boundaries, g, channel, lane, states);
            }
        }
    }

    /// <summary>The whole backward of one (batch, channel) by its StateLanes lanes.</summary>
    private static void BackwardPairLanes(SelectiveScanShape s, SelectiveScanInputs p, ArrayView<float> dy,
        ArrayView<float> boundaries, ScanBackwardTargets g, ScanChannel channel, PairLane lane, ArrayView<float> column)
    {
        int n = s.States, d = channel.Channel;
        bool owner = channel.Live && lane.State < n; // padding lanes (d_state rounded up) hold zeros throughout
        var state = new LaneState
        {
            A = owner ? -XMath.Exp(p.ALog[d * n + lane.State]) : 0f,
            DSkip = channel.Live ? p.DSkip[d] : 0f,
            DeltaBias = channel.Live ? p.DeltaBias[d] : 0f,
        };
        for (int c = s.Chunks - 1; c >= 0; c--)
        {
            int t0 = c * s.Chunk, count = XMath.Min(s.Chunk, s.Length - t0);
            RecomputeChunkLanes(s, p, dy, boundaries, g, channel, lane, column, owner, ref state, c, t0, count);
            int lastBlock = (count - 1) / s.StateLanes * s.StateLanes;
            for (int j0 = lastBlock; j0 >= 0; j0 -= s.StateLanes)
                BackwardBlockLanes(s, p, dy, g, channel, lane, column, owner, ref state, t0, j0, XMath.Min(s.StateLanes, count - j0));
        }
        // Per-pair sums over states in a fixed tree order; the pair's lane 0 writes them.
        float dSkipGrad = LaneSum(state.DSkipGrad, s.StateLanes), deltaBiasGrad = LaneSum(state.DeltaBiasGrad, s.StateLanes);
        if (!channel.Live) return;
        long paramAt = (long)channel.Batch * s.ParamSlots * s.Channels + d;
        if (owner) g.ParamPartial[paramAt + (long)lane.State * s.Channels] = state.DALog;
        if (lane.State == 0)
        {
            g.ParamPartial[paramAt + (long)n * s.Channels] = dSkipGrad;
            g.ParamPartial[paramAt + (long)(n + 1) * s.Channels] = deltaBiasGrad;
        }
        if (s.HasInitial != 0 && owner) g.DInitial[((long)channel.Batch * s.Channels + d) * n + lane.State] += state.DH;
    }

    /// <summary>
    /// Recomputes chunk c from its boundary into this thread's shared-memory column (row 0 the boundary, row j + 1
    /// h after step j) and adds dz for the chunk's timesteps, each by the lane that loaded it.
    /// </summary>
    private static void RecomputeChunkLanes(SelectiveScanShape s, SelectiveScanInputs p, ArrayView<float> dy,
        ArrayView<float> boundaries, ScanBackwardTargets g, ScanChannel channel, PairLane lane, ArrayView<float> column,
        bool owner, ref LaneState state, int c, int t0, int count)
    {
        int threads = Group.DimX, me = Group.IdxX, n = s.States, lanes = s.StateLanes, channels = s.Channels, d = channel.Channel;
        long tokens = (long)channel.Batch * s.Length * channels + d, rows = (long)channel.Batch * s.Length * n + lane.State;
        float h = owner ? boundaries[(((long)channel.Batch * s.Chunks + c) * n + lane.State) * channels + d] : 0f;
        column[me] = h;
        for (int j0 = 0; j0 < count; j0 += lanes)
        {
            var step = LoadStep(s, p, dy, channel, lane, state.DeltaBias, tokens, t0 + j0, t0 + count);
            float dotMine = 0f;
            int steps = XMath.Min(lanes, count - j0);
            for (int j = 0; j < steps; j++)
            {
                float dt = Warp.Shuffle(step.Dt, lane.GroupStart + j), u = Warp.Shuffle(step.U, lane.GroupStart + j);
                long row = rows + (long)(t0 + j0 + j) * n;
                float bi = owner ? p.B[row] : 0f, ci = owner ? p.C[row] : 0f;
                h = XMath.Exp(dt * state.A) * h + dt * u * bi;
                column[(j0 + j + 1) * threads + me] = h;
                float dot = LaneSum(ci * h, lanes);
                if (lane.State == j) dotMine = dot;
            }
            if (!step.Live) continue;
            float gate = Sigmoid(step.Z), output = dotMine + state.DSkip * step.U;
            g.DZ[step.At] += step.Dy * output * gate * (1f + step.Z * (1f - gate));
        }
    }

    /// <summary>
    /// The adjoint recurrence over the chunk's steps j0 + steps - 1 down to j0 (one block of timesteps, lane k
    /// having loaded step j0 + k), then du and ddelta written by the lane that owns each timestep.
    /// </summary>
    private static void BackwardBlockLanes(SelectiveScanShape s, SelectiveScanInputs p, ArrayView<float> dy,
        ScanBackwardTargets g, ScanChannel channel, PairLane lane, ArrayView<float> column, bool owner, ref LaneState state,
        int t0, int j0, int steps)
    {
        int threads = Group.DimX, me = Group.IdxX, n = s.States, lanes = s.StateLanes, pairLanes = s.Lanes * lanes;
        long tokens = (long)channel.Batch * s.Length * s.Channels + channel.Channel;
        long rows = (long)channel.Batch * s.Length * n + lane.State;
        var step = LoadStep(s, p, dy, channel, lane, state.DeltaBias, tokens, t0 + j0, t0 + j0 + steps);
        float gMine = step.Dy * step.Z * Sigmoid(step.Z); // d loss / d output: dy times silu(z)
        float duMine = 0f, dtGradMine = 0f;
        bool writer = channel.Active && lane.Pair == 0 && lane.State < n;
        for (int j = steps - 1; j >= 0; j--)
        {
            int t = t0 + j0 + j, source = lane.GroupStart + j;
            float dt = Warp.Shuffle(step.Dt, source), u = Warp.Shuffle(step.U, source), gOut = Warp.Shuffle(gMine, source);
            long row = rows + (long)t * n;
            float bi = owner ? p.B[row] : 0f, ci = owner ? p.C[row] : 0f;
            float hi = column[(j0 + j + 1) * threads + me], hPrevious = column[(j0 + j) * threads + me];
            float dhi = state.DH + gOut * ci, decay = XMath.Exp(dt * state.A);
            float viaDecay = dhi * decay * hPrevious;
            state.DALog += viaDecay * dt * state.A; // d exp(dt A)/d A_log = exp(dt A) dt A
            state.DH = decay * dhi;
            float dtGrad = LaneSum(viaDecay * state.A + dhi * bi * u, lanes), du = LaneSum(dhi * dt * bi, lanes);
            if (lane.State == j)
            {
                dtGradMine = dtGrad;
                duMine = du;
            }
            // dB and dC sum over channels: across the unit's pairs (lanes State, State + StateLanes, ...) only.
            float dB = owner ? dhi * dt * u : 0f, dC = owner ? gOut * hi : 0f;
            for (int mask = lanes; mask < pairLanes; mask <<= 1)
            {
                dB += Warp.ShuffleXor(dB, mask);
                dC += Warp.ShuffleXor(dC, mask);
            }
            if (!writer) continue;
            long partialAt = (((long)channel.Block * s.Batch + channel.Batch) * s.Length + t) * n + lane.State;
            g.PartialB[partialAt] = channel.Slice == 0 ? dB : g.PartialB[partialAt] + dB;
            g.PartialC[partialAt] = channel.Slice == 0 ? dC : g.PartialC[partialAt] + dC;
        }
        if (!step.Live) return;
        float deltaGrad = dtGradMine * Sigmoid(step.DeltaPre); // softplus' = sigmoid
        state.DeltaBiasGrad += deltaGrad;
        state.DSkipGrad += gMine * step.U;
        g.DU[step.At] += gMine * state.DSkip + duMine;
        g.DDelta[step.At] += deltaGrad;
    }

    /// <summary>The timestep first + State of a block (none past <paramref name="end"/> or for a dead pair).</summary>
    private static LaneStep LoadStep(SelectiveScanShape s, SelectiveScanInputs p, ArrayView<float> dy, ScanChannel channel,
        PairLane lane, float deltaBias, long tokens, int first, int end)
    {
        int t = first + lane.State;
        var step = new LaneStep { Live = channel.Live && t < end, At = tokens + (long)t * s.Channels };
        if (!step.Live) return step;
        step.U = p.U[step.At];
        step.DeltaPre = p.Delta[step.At] + deltaBias;
        step.Dt = Softplus(step.DeltaPre);
        step.Z = p.Z[step.At];
        step.Dy = dy[step.At];
        return step;
    }
}

/// <summary>Where a thread sits: its state index in the pair, its pair in the unit, the warp lane of its pair's lane 0.</summary>
internal struct PairLane
{
    public int State, Pair, GroupStart;
}

/// <summary>One lane's registers through a pair's backward: its state's decay rate, adjoint and A_log gradient,
/// the pair's parameters, and the running D and deltaBias gradients of the timesteps this lane owned.</summary>
internal struct LaneState
{
    public float A, DH, DALog, DSkip, DeltaBias, DSkipGrad, DeltaBiasGrad;
}

/// <summary>The inputs at the timestep a lane loaded for its block.</summary>
internal struct LaneStep
{
    public bool Live;
    public long At;
    public float U, DeltaPre, Dt, Z, Dy;
}
