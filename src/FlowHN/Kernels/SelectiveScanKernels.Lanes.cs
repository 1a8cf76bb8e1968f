using ILGPU;
using ILGPU.Algorithms;

namespace FlowHN.Kernels;

/// <summary>
/// The forward with lanes over states, the GPU's scan: a group of <see cref="SelectiveScanShape.StateLanes"/>
/// consecutive lanes of a warp (d_state rounded up to a power of two, at most a warp) takes one (batch, channel)
/// pair and each lane owns one state h_i in a register, so no per-thread array exists at all. Per timestep a lane
/// loads its B_i and C_i (the group reads one contiguous row), updates h_i, and the output's sum over states
/// C . h is a butterfly of XOR shuffles. u, delta and z are loaded once per (pair, timestep): lane j loads and
/// takes softplus for timestep t0 + j of a block of StateLanes timesteps, the group broadcasts dt and dt u by
/// shuffles as it walks the block, and lane j writes y for its timestep at the block's end. A GPU runs
/// d_state x more threads than the per-channel forward (196k at the 135M shape instead of 12k) and each thread's
/// dependent chain is one state long instead of d_state. Chunk boundaries and the final state are written
/// exactly as the per-channel forward writes them, so the backward reads either.
/// </summary>
internal static partial class SelectiveScanKernels
{
    /// <summary>y = the scan's output, one group of StateLanes lanes per (batch, channel); see the summary above.</summary>
    public static void SelectiveScanForwardLanes(SelectiveScanShape s, SelectiveScanInputs p, ArrayView<float> y,
        ArrayView<float> boundaries, ArrayView<float> final, int outputs)
    {
        int lanes = s.StateLanes, n = s.States, channels = s.Channels, length = s.Length, chunk = s.Chunk, chunks = s.Chunks;
        int pairs = s.Pairs;
        var loop = RowLoop.Of(lanes);
        int lane = loop.Lane, groupStart = Warp.LaneIdx - lane; // the warp lane of this pair's lane 0
        bool save = (outputs & SaveBoundaries) != 0;
        // Every loop bound below is the same for all threads of a group, so every shuffle sees every lane.
        for (int firstPair = loop.Start; firstPair < pairs; firstPair += loop.Step)
        {
            int pair = firstPair + loop.Offset;
            bool live = pair < pairs;
            bool owner = live && lane < n; // lanes past d_state (the power-of-two padding) keep a zero state
            int d = live ? pair % channels : 0, b = live ? pair / channels : 0;
            float a = owner ? -XMath.Exp(p.ALog[d * n + lane]) : 0f;
            float h = owner && s.HasInitial != 0 ? p.Initial[(long)pair * n + lane] : 0f;
            float dSkip = live ? p.DSkip[d] : 0f, deltaBias = live ? p.DeltaBias[d] : 0f;
            long tokens = (long)b * length * channels + d, rows = (long)b * length * n + lane;
            for (int t0 = 0; t0 < length; t0 += lanes)
            {
                int mine = t0 + lane, steps = XMath.Min(lanes, length - t0);
                bool stepLive = live && mine < length;
                long at = tokens + (long)mine * channels;
                float u = stepLive ? p.U[at] : 0f, dtMine = stepLive ? Softplus(p.Delta[at] + deltaBias) : 0f;
                float dtuMine = dtMine * u, dotMine = 0f;
                for (int j = 0; j < steps; j++)
                {
                    int t = t0 + j;
                    if (save && owner && t % chunk == 0)
                        boundaries[(((long)b * chunks + t / chunk) * n + lane) * channels + d] = h;
                    float dt = Warp.Shuffle(dtMine, groupStart + j), dtu = Warp.Shuffle(dtuMine, groupStart + j);
                    long row = rows + (long)t * n;
                    float bi = owner ? p.B[row] : 0f, ci = owner ? p.C[row] : 0f;
                    h = XMath.Exp(dt * a) * h + dtu * bi;
                    float dot = LaneSum(ci * h, lanes);
                    if (lane == j) dotMine = dot;
                }
                if (stepLive)
                {
                    float z = p.Z[at];
                    y[at] = (dotMine + dSkip * u) * z / (1f + XMath.Exp(-z));
                }
            }
            if ((outputs & WriteFinal) != 0 && owner) final[(long)pair * n + lane] = h;
        }
    }

    /// <summary>Lanes a group of the lanes-over-states kernels needs for d_state n: n rounded up to a power of two.</summary>
    public static int StateLanesFor(int n)
    {
        int lanes = 1;
        while (lanes < n) lanes <<= 1;
        return lanes;
    }
}
