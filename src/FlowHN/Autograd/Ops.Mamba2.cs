using FlowHN.Kernels;
using FlowHN.Tensors;

namespace FlowHN.Autograd;

public static partial class Ops
{
    /// <summary>
    /// Mamba-2's SSD scan. x [B, L, H, P]; dt [B, L, H] (before the softplus); dtBias, aLog, d [H]; b, c [B, L, G, N]
    /// (head h reads group h / (H / G)); optional initialState [B, H, P, N]. With dt = softplus(dt + dtBias) and the
    /// scalar A = -exp(aLog): h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T, y_t = h_t C_t + D x_t, computed in chunks of
    /// <paramref name="chunk"/> steps (0: the default). Every input, the initial state included, is differentiable.
    /// </summary>
    public static Tensor Ssd(Tensor x, Tensor dt, Tensor dtBias, Tensor aLog, Tensor b, Tensor c, Tensor d,
        Tensor? initialState = null, int chunk = 0) =>
        SsdScan(x, dt, dtBias, aLog, b, c, d, initialState, chunk, finalState: false).Y;

    /// <summary>
    /// <see cref="Ssd"/> and the state after the last step, [B, H, P, N] (not differentiable), which continues the
    /// scan in a following segment when passed as its initial state.
    /// </summary>
    public static (Tensor Y, Tensor FinalState) SsdWithState(Tensor x, Tensor dt, Tensor dtBias, Tensor aLog, Tensor b, Tensor c,
        Tensor d, Tensor? initialState = null, int chunk = 0)
    {
        var (y, final) = SsdScan(x, dt, dtBias, aLog, b, c, d, initialState, chunk, finalState: true);
        return (y, final!);
    }

    private static (Tensor Y, Tensor? Final) SsdScan(Tensor x, Tensor dt, Tensor dtBias, Tensor aLog, Tensor b, Tensor c, Tensor d,
        Tensor? initialState, int chunk, bool finalState)
    {
        var device = Session.Of(x);
        var kernels = device.Kernels.Ssd;
        var s = SsdShapeOf(x, dt, dtBias, aLog, b, c, d, initialState, chunk);
        Tensor?[] inputs = [x, dt, dtBias, aLog, b, c, d, initialState];
        // The state entering every chunk is kept only when a backward will need it.
        var states = Tape.ShouldRecord(device, inputs) ? Tensor.Empty(device, [(int)s.ChunkStatesLength]) : null;
        var y = Like(x);
        var final = finalState ? Tensor.Empty(device, [s.Batch, s.Heads, s.HeadDim, s.States]) : null;
        SsdInputs Views() => new()
        {
            X = x.View, Dt = dt.View, DtBias = dtBias.View, ALog = aLog.View, B = b.View, C = c.View, D = d.View,
            Initial = initialState?.View ?? default,
        };
        kernels.Forward(s, Views(), y.View, states?.View ?? default, final?.View ?? default);
        double forwardFlops = SsdForwardFlops(s);
        device.Runtime.Counters.Scan(forwardFlops);
        Record(y, dy =>
        {
            device.Runtime.Counters.Scan(2 * forwardFlops);
            kernels.Backward(s, Views(), dy.View, y.View, states!.View, new SsdGradientViews
            {
                DX = GradientOrScratch(x), DDt = GradientOrScratch(dt), DDtBias = GradientOrScratch(dtBias),
                DALog = GradientOrScratch(aLog), DB = GradientOrScratch(b), DC = GradientOrScratch(c), DD = GradientOrScratch(d),
                DInitial = initialState is { RequiresGrad: true } ? Gradients.For(initialState).View : default,
            });
        }, inputs);
        return (y, final);
    }

    /// <summary>
    /// Model FLOPs of the chunked algorithm per (batch, head): the C B^T scores (Q N per step, half masked, counted
    /// whole as a matrix product would), the masked product with dt x (Q P), the chunk states and the inter-chunk
    /// output (2 P N each), each a multiply-add (2 FLOPs).
    /// </summary>
    internal static double SsdForwardFlops(SsdShape s) =>
        2.0 * s.Batch * s.Length * s.Heads * ((double)s.Chunk * s.States / s.HeadsPerGroup + s.Chunk * s.HeadDim +
                                              2.0 * s.HeadDim * s.States);

    private static SsdShape SsdShapeOf(Tensor x, Tensor dt, Tensor dtBias, Tensor aLog, Tensor b, Tensor c, Tensor d,
        Tensor? initialState, int chunk)
    {
        if (x.Rank != 4) throw new ArgumentException($"Ssd: x {x.ShapeString} must be [batch, length, heads, head_dim].");
        if (b.Rank != 4) throw new ArgumentException($"Ssd: B {b.ShapeString} must be [batch, length, groups, d_state].");
        int batch = x.Dim(0), length = x.Dim(1), heads = x.Dim(2), headDim = x.Dim(3), groups = b.Dim(2), states = b.Dim(3);
        SsdRequire(dt, "dt", batch, length, heads);
        SsdRequire(b, "B", batch, length, groups, states);
        SsdRequire(c, "C", batch, length, groups, states);
        SsdRequire(dtBias, "dt bias", heads);
        SsdRequire(aLog, "A_log", heads);
        SsdRequire(d, "D", heads);
        if (initialState is not null) SsdRequire(initialState, "initial state", batch, heads, headDim, states);
        return SsdLauncher.Shape(batch, length, heads, headDim, groups, states, initialState is not null, chunk);
    }

    private static void SsdRequire(Tensor t, string name, params int[] shape)
    {
        if (!t.Shape.SequenceEqual(shape))
            throw new ArgumentException($"Ssd: {name} {t.ShapeString} must be [{string.Join(", ", shape)}].");
    }
}
