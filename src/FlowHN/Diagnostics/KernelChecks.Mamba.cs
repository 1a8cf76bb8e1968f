using FlowHN.Kernels;
using FlowHN.Runtime;
using FlowHN.Tensors;
using static FlowHN.Diagnostics.HostReference;
using FlowHN.Autograd;

namespace FlowHN.Diagnostics;

public static partial class KernelChecks
{
    /// <summary>One scan or convolution case; chunk 0 lets the launcher choose.</summary>
    private sealed record MambaCheckSize(int Batch, int Length, int Channels, int States, int Chunk, bool WithState);

    /// <summary>
    /// Lengths that are no multiple of the chunk, several d_state values (the largest with the chunk the launcher
    /// picks), with and without a carried state; on a GPU the 135M model's scan at its training shape (batch 8 x
    /// 1024, d_inner 1536, d_state 16: the same grid, chunk count and partial rows as a training step). The CPU
    /// sizes stay small: on a preset whose warps hold the lanes (the GPU's lanes-over-states kernels) every
    /// shuffle is a barrier of the warp's threads; d_state 4, 16 and 32 there take 4, 16 and 32 lanes per channel,
    /// d_state 5 takes 8 (three padding lanes).
    /// </summary>
    private static MambaCheckSize[] ScanSizes(Session d) => d.Runtime.IsCuda
        ? [new(8, 1024, 1536, 16, 0, false), new(2, 300, 96, 16, 0, true), new(1, 77, 40, 32, 0, true)]
        : [new(2, 11, 24, 16, 4, false), new(2, 19, 5, 4, 8, true), new(2, 9, 6, 5, 4, true), new(1, 5, 7, 32, 0, true)];

    /// <summary>Width 4 with SiLU and a state, width 3 plain; chunks that split the sequence unevenly.</summary>
    private static (MambaCheckSize Size, int Width, bool Silu)[] ConvSizes(Session d) => d.Runtime.IsCuda
        ? [(new(2, 1024, 1536, 0, 0, true), 4, true), (new(2, 300, 96, 0, 0, false), 3, false)]
        : [(new(2, 37, 24, 0, 16, true), 4, true), (new(3, 11, 5, 0, 4, false), 3, false)];

    private static double ScanCheck(Session d, Random random, bool backward) =>
        ScanSizes(d).Max(size => ScanCase(d, random, size, backward));

    private static double ConvCheck(Session d, Random random, bool backward) =>
        ConvSizes(d).Max(c => ConvCase(d, random, c.Size, c.Width, c.Silu, backward));

    /// <summary>
    /// Inputs in the ranges a Mamba layer sees: dt = softplus(delta + bias) from about 0.005 to 3, A from
    /// about -1 to -N (A_log = log(1..N) plus noise), everything else standard normal.
    /// </summary>
    public static ScanData RandomScanData(Random random, int batch, int length, int channels, int states, bool withInitial)
    {
        int tokens = batch * length * channels, rows = batch * length * states;
        var aLog = new float[channels * states];
        for (int i = 0; i < aLog.Length; i++) aLog[i] = (float)(Math.Log(1 + i % states) + 0.1 * (random.NextDouble() - 0.5));
        var deltaBias = Enumerable.Range(0, channels).Select(_ => (float)(-4 * random.NextDouble())).ToArray();
        return new ScanData(batch, length, channels, states, Randoms(random, tokens), Randoms(random, tokens), deltaBias, aLog,
            Randoms(random, rows), Randoms(random, rows), Randoms(random, channels), Randoms(random, tokens),
            withInitial ? Randoms(random, batch * channels * states) : null);
    }

    private static double ScanCase(Session d, Random random, MambaCheckSize size, bool backward)
    {
        var x = RandomScanData(random, size.Batch, size.Length, size.Channels, size.States, size.WithState);
        var kernels = d.Kernels.SelectiveScan;
        var s = kernels.Shape(x.Batch, x.Length, x.Channels, x.States, size.WithState, size.Chunk);
        var p = new SelectiveScanInputs
        {
            U = Up(d, x.U, x.U.Length).View, Delta = Up(d, x.Delta, x.U.Length).View,
            DeltaBias = Up(d, x.DeltaBias, x.Channels).View, ALog = Up(d, x.ALog, x.ALog.Length).View,
            B = Up(d, x.B, x.B.Length).View, C = Up(d, x.C, x.C.Length).View, DSkip = Up(d, x.DSkip, x.Channels).View,
            Z = Up(d, x.Z, x.Z.Length).View, Initial = x.Initial is null ? default : Up(d, x.Initial, x.Initial.Length).View,
        };
        var y = Tensor.Empty(d, [x.U.Length]);
        var final = Tensor.Empty(d, [x.Batch * x.Channels * x.States]);
        var boundaries = Tensor.Empty(d, [(int)SelectiveScanLauncher.BoundaryLength(s)]);
        kernels.Forward(s, p, y.View, boundaries.View, final.View);
        if (!backward)
        {
            var (yRef, finalRef) = SelectiveScan(x);
            return Math.Max(RelativeError(y.ToArray(), yRef), RelativeError(final.ToArray(), finalRef));
        }
        var dy = Randoms(random, x.U.Length);
        // Random starting gradients: the kernels must add to them, not overwrite them.
        int tokens = x.U.Length, rows = x.B.Length;
        int[] lengths = [tokens, tokens, x.Channels, x.ALog.Length, rows, rows, x.Channels, tokens, (int)final.Length];
        var starts = lengths.Select(length => Randoms(random, length)).ToArray();
        var grads = starts.Select(start => Up(d, start, start.Length)).ToArray();
        kernels.Backward(s, p, Up(d, dy, dy.Length).View, boundaries.View, new SelectiveScanGradients
        {
            DU = grads[0].View, DDelta = grads[1].View, DDeltaBias = grads[2].View, DALog = grads[3].View, DB = grads[4].View,
            DC = grads[5].View, DSkip = grads[6].View, DZ = grads[7].View, DInitial = size.WithState ? grads[8].View : default,
        });
        var r = SelectiveScanBackward(x, dy);
        var expected = new[] { r.DU, r.DDelta, r.DDeltaBias, r.DALog, r.DB, r.DC, r.DSkip, r.DZ, r.DInitial };
        int checkedCount = size.WithState ? expected.Length : expected.Length - 1;
        return Enumerable.Range(0, checkedCount).Max(i => GradientError(grads[i], starts[i], expected[i]));
    }

    private static double ConvCase(Session d, Random random, MambaCheckSize size, int width, bool silu, bool backward)
    {
        int batch = size.Batch, length = size.Length, channels = size.Channels, n = batch * length * channels;
        int stateLength = batch * (width - 1) * channels;
        var x = Randoms(random, n);
        var w = Randoms(random, channels * width, 0.5);
        var bias = Randoms(random, channels);
        var state = size.WithState ? Randoms(random, stateLength) : null;
        var kernels = d.Kernels.CausalConv;
        var s = kernels.Shape(batch, length, channels, width, silu, size.WithState, size.Chunk);
        var (xt, wt, bt) = (Up(d, x, n), Up(d, w, w.Length), Up(d, bias, channels));
        var stateView = state is null ? default : Up(d, state, stateLength).View;
        if (!backward)
        {
            var y = Tensor.Empty(d, [n]);
            kernels.Forward(s, xt.View, wt.View, bt.View, stateView, y.View);
            return RelativeError(y.ToArray(), CausalConv(x, w, bias, state, batch, length, channels, width, silu));
        }
        var dy = Randoms(random, n);
        var (dx0, dw0, db0, dState0) = (Randoms(random, n), Randoms(random, w.Length), Randoms(random, channels),
            Randoms(random, stateLength));
        var (dx, dw, db, dState) = (Up(d, dx0, n), Up(d, dw0, w.Length), Up(d, db0, channels), Up(d, dState0, stateLength));
        kernels.Backward(s, xt.View, wt.View, bt.View, stateView, Up(d, dy, n).View, dx.View, dw.View, db.View,
            state is null ? default : dState.View);
        var r = CausalConvBackward(x, w, bias, state, dy, batch, length, channels, width, silu);
        double error = Math.Max(GradientError(dx, dx0, r.Dx), Math.Max(GradientError(dw, dw0, r.DWeight), GradientError(db, db0, r.DBias)));
        return state is null ? error : Math.Max(error, GradientError(dState, dState0, r.DState));
    }
}
