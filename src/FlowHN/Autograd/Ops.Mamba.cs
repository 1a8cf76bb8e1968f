using FlowHN.Kernels;
using FlowHN.Tensors;

namespace FlowHN.Autograd;

public static partial class Ops
{
    /// <summary>
    /// Depthwise causal conv1d over the sequence of x [B, L, D] with weight [D, W] (W at most 4) and bias [D],
    /// optionally followed by SiLU: y[b,t,d] = bias[d] + sum_j weight[d,j] x[b, t-W+1+j, d]. The inputs before
    /// time 0 come from <paramref name="initialState"/> [B, W-1, D] (differentiable), or are zero.
    /// </summary>
    public static Tensor CausalConv1d(Tensor x, Tensor weight, Tensor bias, bool silu, Tensor? initialState = null)
    {
        var s = CausalConvShapeOf(x, weight, bias, silu, initialState);
        var kernels = x.Device.Kernels.CausalConv;
        var y = Like(x);
        kernels.Forward(s, x.View, weight.View, bias.View, initialState?.View ?? default, y.View);
        double forwardFlops = 2.0 * weight.Dim(1) * x.Length; // a multiply-add per tap, channel and token
        x.Device.Runtime.Counters.Conv(forwardFlops);
        return Record(y, dy =>
        {
            x.Device.Runtime.Counters.Conv(2 * forwardFlops);
            kernels.Backward(s, x.View, weight.View, bias.View, initialState?.View ?? default, dy.View,
                GradientOrScratch(x), GradientOrScratch(weight), GradientOrScratch(bias),
                initialState is { RequiresGrad: true } ? Gradients.For(initialState).View : default);
        }, x, weight, bias, initialState);
    }

    /// <summary>
    /// <see cref="CausalConv1d"/> and the state that continues it in a following segment: the last W-1 inputs
    /// of initialState ++ x, [B, W-1, D] (not differentiable).
    /// </summary>
    public static (Tensor Y, Tensor FinalState) CausalConv1dWithState(Tensor x, Tensor weight, Tensor bias, bool silu,
        Tensor? initialState = null)
    {
        var y = CausalConv1d(x, weight, bias, silu, initialState);
        var s = CausalConvShapeOf(x, weight, bias, silu, initialState);
        var final = Tensor.Empty(x.Device, [s.Batch, s.Width - 1, s.Channels]);
        x.Device.Kernels.CausalConv.Tail(s, x.View, initialState?.View ?? default, final.View);
        return (y, final);
    }

    /// <summary>
    /// Mamba-1 selective scan. u, delta, z [B, L, D]; deltaBias, dSkip [D]; aLog [D, N]; b, c [B, L, N];
    /// optional initialState [B, D, N]. With dt = softplus(delta + deltaBias) and A = -exp(aLog):
    /// h_t = exp(dt_t A) h_{t-1} + dt_t b_t u_t and y_t = (c_t . h_t + dSkip u_t) silu(z_t).
    /// Every input, the initial state included, is differentiable.
    /// </summary>
    public static Tensor SelectiveScan(Tensor u, Tensor delta, Tensor deltaBias, Tensor aLog, Tensor b, Tensor c, Tensor dSkip,
        Tensor z, Tensor? initialState = null) =>
        Scan(u, delta, deltaBias, aLog, b, c, dSkip, z, initialState, finalState: false).Y;

    /// <summary>
    /// <see cref="SelectiveScan"/> and the state after the last step, [B, D, N] (not differentiable), which
    /// continues the scan in a following segment when passed as its initial state.
    /// </summary>
    public static (Tensor Y, Tensor FinalState) SelectiveScanWithState(Tensor u, Tensor delta, Tensor deltaBias, Tensor aLog,
        Tensor b, Tensor c, Tensor dSkip, Tensor z, Tensor? initialState = null)
    {
        var (y, final) = Scan(u, delta, deltaBias, aLog, b, c, dSkip, z, initialState, finalState: true);
        return (y, final!);
    }

    private static (Tensor Y, Tensor? Final) Scan(Tensor u, Tensor delta, Tensor deltaBias, Tensor aLog, Tensor b, Tensor c,
        Tensor dSkip, Tensor z, Tensor? initialState, bool finalState)
    {
        var device = u.Device;
        var kernels = device.Kernels.SelectiveScan;
        var s = SelectiveScanShapeOf(kernels, u, delta, deltaBias, aLog, b, c, dSkip, z, initialState);
        Tensor?[] inputs = [u, delta, deltaBias, aLog, b, c, dSkip, z, initialState];
        // Chunk-boundary states are kept only when a backward will need them.
        var boundaries = Tape.ShouldRecord(Session.Of(u), inputs)
            ? Tensor.Empty(device, [s.Batch, s.Chunks, s.States, s.Channels])
            : null;
        var y = Like(u);
        var final = finalState ? Tensor.Empty(device, [s.Batch, s.Channels, s.States]) : null;
        SelectiveScanInputs Views() => new()
        {
            U = u.View, Delta = delta.View, DeltaBias = deltaBias.View, ALog = aLog.View, B = b.View, C = c.View,
            DSkip = dSkip.View, Z = z.View, Initial = initialState?.View ?? default,
        };
        kernels.Forward(s, Views(), y.View, boundaries?.View ?? default, final?.View ?? default);
        // Model FLOPs as in the Mamba paper: 9 per channel and state per token, plus the skip and the gate.
        double forwardFlops = (9.0 * s.States + 4.0) * s.Channels * s.Batch * u.Dim(1);
        device.Runtime.Counters.Scan(forwardFlops);
        Record(y, dy =>
        {
            device.Runtime.Counters.Scan(2 * forwardFlops);
            kernels.Backward(s, Views(), dy.View, boundaries!.View, new SelectiveScanGradients
            {
                DU = GradientOrScratch(u), DDelta = GradientOrScratch(delta), DDeltaBias = GradientOrScratch(deltaBias),
                DALog = GradientOrScratch(aLog), DB = GradientOrScratch(b), DC = GradientOrScratch(c),
                DSkip = GradientOrScratch(dSkip), DZ = GradientOrScratch(z),
                DInitial = initialState is { RequiresGrad: true } ? Gradients.For(initialState).View : default,
            });
        }, inputs);
        return (y, final);
    }

    private static CausalConvShape CausalConvShapeOf(Tensor x, Tensor weight, Tensor bias, bool silu, Tensor? state)
    {
        if (x.Rank != 3) throw new ArgumentException($"CausalConv1d: x {x.ShapeString} must be [batch, length, channels].");
        int batch = x.Dim(0), channels = x.Dim(2);
        if (weight.Rank != 2 || weight.Dim(0) != channels || bias.Rank != 1 || bias.Dim(0) != channels)
            throw new ArgumentException(
                $"CausalConv1d: weight {weight.ShapeString} must be [{channels}, width] and bias {bias.ShapeString} [{channels}].");
        int width = weight.Dim(1);
        if (state is not null && !state.Shape.SequenceEqual([batch, width - 1, channels]))
            throw new ArgumentException($"CausalConv1d: state {state.ShapeString} must be [{batch}, {width - 1}, {channels}].");
        return x.Device.Kernels.CausalConv.Shape(batch, x.Dim(1), channels, width, silu, state is not null);
    }

    private static SelectiveScanShape SelectiveScanShapeOf(SelectiveScanLauncher kernels, Tensor u, Tensor delta,
        Tensor deltaBias, Tensor aLog, Tensor b, Tensor c, Tensor dSkip, Tensor z, Tensor? initialState)
    {
        if (u.Rank != 3) throw new ArgumentException($"SelectiveScan: u {u.ShapeString} must be [batch, length, channels].");
        int batch = u.Dim(0), length = u.Dim(1), channels = u.Dim(2);
        if (aLog.Rank != 2 || aLog.Dim(0) != channels)
            throw new ArgumentException($"SelectiveScan: A_log {aLog.ShapeString} must be [{channels}, d_state].");
        int states = aLog.Dim(1);
        RequireShape(delta, "delta", batch, length, channels);
        RequireShape(z, "z", batch, length, channels);
        RequireShape(b, "B", batch, length, states);
        RequireShape(c, "C", batch, length, states);
        RequireShape(deltaBias, "delta bias", channels);
        RequireShape(dSkip, "D", channels);
        if (initialState is not null) RequireShape(initialState, "initial state", batch, channels, states);
        return kernels.Shape(batch, length, channels, states, initialState is not null);
    }

    private static void RequireShape(Tensor t, string name, params int[] shape)
    {
        if (!t.Shape.SequenceEqual(shape))
            throw new ArgumentException($"SelectiveScan: {name} {t.ShapeString} must be [{string.Join(", ", shape)}].");
    }
}
