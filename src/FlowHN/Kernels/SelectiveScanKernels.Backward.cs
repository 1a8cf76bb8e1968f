using ILGPU;
using ILGPU.Algorithms;

namespace FlowHN.Kernels;

internal static partial class SelectiveScanKernels
{
    /// <summary>
    /// Gradients of the scan for output gradient dy (see the class summary for the work split). Every loop
    /// bound is the same for all threads of a warp, so the lane shuffles always see every lane; threads without
    /// a channel (past the last channel or unit) run along with zeros and write nothing.
    /// </summary>
    public static void SelectiveScanBackward(SelectiveScanShape s, SelectiveScanInputs p, ArrayView<float> dy, ArrayView<float> boundaries,
        ScanBackwardTargets g)
    {
        var scratch = new ChannelScratch
        {
            A = LocalMemory.Allocate<float>(MaxStates),
            DH = LocalMemory.Allocate<float>(MaxStates),
            DALog = LocalMemory.Allocate<float>(MaxStates),
            States = LocalMemory.Allocate<float>(ChunkStateFloats),
        };
        int lanes = s.Lanes, units = s.BackwardUnits, blocks = s.Blocks, slices = s.ChannelsPerThread;
        var loop = RowLoop.Of(lanes);
        for (int firstUnit = loop.Start; firstUnit < units; firstUnit += loop.Step)
        {
            int unit = firstUnit + loop.Offset;
            bool active = unit < units;
            int b = active ? unit / blocks : 0, block = unit % blocks;
            // Each slice of a block is `lanes` consecutive channels, one per lane, so loads stay coalesced.
            for (int slice = 0; slice < slices; slice++)
            {
                int d = (block * slices + slice) * lanes + loop.Lane;
                var channel = new ScanChannel { Batch = b, Channel = d, Block = block, Slice = slice, Lane = loop.Lane,
                    Active = active, Live = active && d < s.Channels };
                BackwardChannel(s, p, dy, boundaries, g, scratch, channel);
            }
        }
    }

    /// <summary>The whole backward of one (batch, channel): chunks last to first, then the per-channel sums.</summary>
    private static void BackwardChannel(SelectiveScanShape s, SelectiveScanInputs p, ArrayView<float> dy,
        ArrayView<float> boundaries, ScanBackwardTargets g, ChannelScratch scratch, ScanChannel channel)
    {
        int n = s.States, d = channel.Channel;
        bool live = channel.Live;
        var sums = new ChannelSums();
        if (live)
        {
            LoadDecayRates(p, scratch.A, d, n);
            sums.DSkip = p.DSkip[d];
            sums.DeltaBias = p.DeltaBias[d];
            for (int i = 0; i < n; i++)
            {
                scratch.DH[i] = 0f;
                scratch.DALog[i] = 0f;
            }
        }
        for (int c = s.Chunks - 1; c >= 0; c--)
        {
            int t0 = c * s.Chunk, count = XMath.Min(s.Chunk, s.Length - t0);
            if (live) RecomputeChunk(s, p, boundaries, scratch, channel, c, t0, count, sums.DeltaBias);
            for (int j = count - 1; j >= 0; j--) BackwardStep(s, p, dy, g, scratch, channel, t0 + j, j, ref sums);
        }
        if (!live) return;
        long paramAt = (long)channel.Batch * s.ParamSlots * s.Channels + d;
        for (int i = 0; i < n; i++) g.ParamPartial[paramAt + (long)i * s.Channels] = scratch.DALog[i];
        g.ParamPartial[paramAt + (long)n * s.Channels] = sums.DSkipGrad;
        g.ParamPartial[paramAt + (long)(n + 1) * s.Channels] = sums.DeltaBiasGrad;
        if (s.HasInitial == 0) return;
        long stateAt = ((long)channel.Batch * s.Channels + d) * n;
        for (int i = 0; i < n; i++) g.DInitial[stateAt + i] += scratch.DH[i];
    }

    /// <summary>
    /// Recomputes chunk c from its saved boundary state into the local buffer: row j + 1 holds h after the
    /// chunk's step j (row 0 the boundary), and the outputs C . h of every step follow, so the reverse pass
    /// need not reload C for them. The decays exp(dt A) are recomputed there instead of stored: an exp is cheap
    /// on a GPU, local memory traffic is not, and the CPU accelerator measured no difference.
    /// </summary>
    private static void RecomputeChunk(SelectiveScanShape s, SelectiveScanInputs p, ArrayView<float> boundaries,
        ChannelScratch scratch, ScanChannel channel, int c, int t0, int count, float deltaBias)
    {
        int n = s.States, channels = s.Channels, d = channel.Channel, b = channel.Batch;
        var a = scratch.A;
        var buffer = scratch.States;
        int dots = DotsOffset(s);
        long boundary = ((long)b * s.Chunks + c) * n * channels + d;
        for (int i = 0; i < n; i++) buffer[i] = boundaries[boundary + (long)i * channels];
        for (int j = 0; j < count; j++)
        {
            long at = ((long)b * s.Length + t0 + j) * channels + d, row = ((long)b * s.Length + t0 + j) * n;
            float dt = Softplus(p.Delta[at] + deltaBias), dtu = dt * p.U[at], dot = 0f;
            int previous = j * n;
            for (int i = 0; i < n; i++)
            {
                float h = XMath.Exp(dt * a[i]) * buffer[previous + i] + dtu * p.B[row + i];
                buffer[previous + n + i] = h;
                dot += p.C[row + i] * h;
            }
            buffer[dots + j] = dot;
        }
    }

    /// <summary>Where the C . h outputs ([Chunk]) start in the local buffer, after the states.</summary>
    private static int DotsOffset(SelectiveScanShape s) => (s.Chunk + 1) * s.States;

    /// <summary>Local floats a chunk needs: states (Chunk + 1 rows) and outputs.</summary>
    public static int ChunkFloats(int chunk, int states) => (chunk + 1) * states + chunk;

    /// <summary>One step of the adjoint recurrence at time t (step j of its chunk).</summary>
    private static void BackwardStep(SelectiveScanShape s, SelectiveScanInputs p, ArrayView<float> dy,
        ScanBackwardTargets g, ChannelScratch scratch, ScanChannel channel, int t, int j, ref ChannelSums sums)
    {
        int n = s.States, lanes = s.Lanes;
        long at = ((long)channel.Batch * s.Length + t) * s.Channels + channel.Channel;
        long row = ((long)channel.Batch * s.Length + t) * n;
        bool live = channel.Live;
        var a = scratch.A;
        var dh = scratch.DH;
        var buffer = scratch.States;
        int current = (j + 1) * n, previous = j * n;
        float u = 0f, dt = 0f, deltaPre = 0f, gOut = 0f, duAcc = 0f, dtGrad = 0f;
        if (live)
        {
            u = p.U[at];
            deltaPre = p.Delta[at] + sums.DeltaBias;
            dt = Softplus(deltaPre);
            float z = p.Z[at], dyt = dy[at], gate = Sigmoid(z);
            float output = buffer[DotsOffset(s) + j] + sums.DSkip * u;
            gOut = dyt * z * gate; // d loss / d output: dy times silu(z)
            g.DZ[at] += dyt * output * gate * (1f + z * (1f - gate));
            sums.DSkipGrad += gOut * u;
            duAcc = gOut * sums.DSkip;
        }
        // Partial rows [block, batch, t, state]: the block's first slice writes, later slices add.
        long partialAt = (((long)channel.Block * s.Batch + channel.Batch) * s.Length + t) * n;
        bool writer = channel.Active && channel.Lane == 0;
        for (int i = 0; i < n; i++)
        {
            float dB = 0f, dC = 0f;
            if (live)
            {
                float hi = buffer[current + i], hPrevious = buffer[previous + i], bi = p.B[row + i];
                float dhi = dh[i] + gOut * p.C[row + i];
                float decay = XMath.Exp(dt * a[i]);
                float viaDecay = dhi * decay * hPrevious;
                dC = gOut * hi;
                dB = dhi * dt * u;
                dtGrad += viaDecay * a[i] + dhi * bi * u;
                duAcc += dhi * dt * bi;
                scratch.DALog[i] += viaDecay * dt * a[i]; // d exp(dt A)/d A_log = exp(dt A) dt A
                dh[i] = decay * dhi;
            }
            if (lanes > 1)
            {
                dB = LaneSum(dB, lanes);
                dC = LaneSum(dC, lanes);
            }
            if (!writer) continue;
            if (channel.Slice == 0)
            {
                g.PartialB[partialAt + i] = dB;
                g.PartialC[partialAt + i] = dC;
            }
            else
            {
                g.PartialB[partialAt + i] += dB;
                g.PartialC[partialAt + i] += dC;
            }
        }
        if (!live) return;
        float deltaGrad = dtGrad * Sigmoid(deltaPre); // softplus' = sigmoid
        sums.DeltaBiasGrad += deltaGrad;
        g.DU[at] += duAcc;
        g.DDelta[at] += deltaGrad;
    }

    /// <summary>Sum over the `lanes` consecutive lanes of a warp segment; every lane gets the same bits.</summary>
    private static float LaneSum(float value, int lanes)
    {
        for (int mask = 1; mask < lanes; mask <<= 1) value += Warp.ShuffleXor(value, mask);
        return value;
    }
}

/// <summary>A backward thread's local arrays.</summary>
internal struct ChannelScratch
{
    public ArrayView<float> A, DH, DALog, States;
}

/// <summary>Which channel a backward thread is on; Live is false for lanes that only join the shuffles.</summary>
internal struct ScanChannel
{
    public int Batch, Channel, Block, Slice, Lane;
    public bool Active, Live;
}

/// <summary>A channel's parameters and its running parameter-gradient sums over time.</summary>
internal struct ChannelSums
{
    public float DSkip, DeltaBias, DSkipGrad, DeltaBiasGrad;
}
