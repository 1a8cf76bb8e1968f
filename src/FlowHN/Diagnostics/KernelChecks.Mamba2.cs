using FlowHN.Autograd;
using FlowHN.Kernels;
using FlowHN.Runtime;
using FlowHN.Tensors;
using static FlowHN.Diagnostics.HostReference;

namespace FlowHN.Diagnostics;

public static partial class KernelChecks
{
    /// <summary>One SSD case; chunk 0 lets the launcher choose.</summary>
    public sealed record SsdCheckSize(int Batch, int Length, int Heads, int HeadDim, int Groups, int States, int Chunk, bool WithState);

    /// <summary>
    /// Lengths that are no multiple of the chunk, grouped and ungrouped B/C, with and without a carried state; on a
    /// GPU also a 135M-sized layer (24 heads of 64, d_state 64, batch 2 x 512).
    /// </summary>
    private static SsdCheckSize[] SsdSizes(Session d) => d.Runtime.IsCuda
        ? [new(2, 512, 24, 64, 1, 64, 0, false), new(2, 300, 8, 16, 2, 32, 64, true), new(1, 77, 4, 8, 4, 16, 16, true)]
        : [new(2, 13, 4, 3, 2, 5, 4, true), new(1, 9, 2, 4, 1, 6, 0, false), new(2, 7, 3, 2, 3, 4, 3, true)];

    private static double SsdCheck(Session d, Random random, bool backward) =>
        SsdSizes(d).Max(size => SsdCase(d, random, size, backward));

    /// <summary>
    /// Inputs in the ranges a Mamba-2 layer sees: dt = softplus(dt + bias) from about 0.005 to 3, A = -exp(A_log)
    /// from about -1 to -16 (A_log = log(1..16) plus noise), everything else standard normal.
    /// </summary>
    public static SsdData RandomSsdData(Random random, SsdCheckSize size)
    {
        var (b, l, h, p, g, n) = (size.Batch, size.Length, size.Heads, size.HeadDim, size.Groups, size.States);
        var aLog = Enumerable.Range(0, h).Select(i => (float)(Math.Log(1 + i % 16) + 0.1 * (random.NextDouble() - 0.5))).ToArray();
        var dtBias = Enumerable.Range(0, h).Select(_ => (float)(-4 * random.NextDouble())).ToArray();
        return new SsdData(b, l, h, p, g, n, Randoms(random, b * l * h * p), Randoms(random, b * l * h), dtBias, aLog,
            Randoms(random, b * l * g * n), Randoms(random, b * l * g * n), Randoms(random, h),
            size.WithState ? Randoms(random, b * h * p * n) : null);
    }

    /// <summary>The SSD kernels' output, final state and (with dy) every gradient, at a given chunk length.</summary>
    public static float[][] RunSsd(Session d, SsdData x, int chunk, float[]? dy = null, float[][]? gradientStarts = null)
    {
        var s = SsdLauncher.Shape(x.Batch, x.Length, x.Heads, x.HeadDim, x.Groups, x.States, x.Initial is not null, chunk);
        var p = new SsdInputs
        {
            X = Up(d, x.X, x.X.Length).View, Dt = Up(d, x.Dt, x.Dt.Length).View, DtBias = Up(d, x.DtBias, x.Heads).View,
            ALog = Up(d, x.ALog, x.Heads).View, B = Up(d, x.B, x.B.Length).View, C = Up(d, x.C, x.C.Length).View,
            D = Up(d, x.D, x.Heads).View, Initial = x.Initial is null ? default : Up(d, x.Initial, x.Initial.Length).View,
        };
        var y = Tensor.Empty(d, [x.X.Length]);
        var final = Tensor.Empty(d, [x.Batch * x.Heads * x.HeadDim * x.States]);
        var states = Tensor.Empty(d, [(int)s.ChunkStatesLength]);
        var kernels = d.Kernels.Ssd;
        kernels.Forward(s, p, y.View, states.View, final.View);
        if (dy is null) return [y.ToArray(), final.ToArray()];
        int[] lengths = [x.X.Length, x.Dt.Length, x.Heads, x.Heads, x.B.Length, x.C.Length, x.Heads, (int)final.Length];
        var grads = lengths.Select((length, i) => gradientStarts is null ? Tensor.Zeros(d, [length]) : Up(d, gradientStarts[i], length))
            .ToArray();
        kernels.Backward(s, p, Up(d, dy, dy.Length).View, y.View, states.View, new SsdGradientViews
        {
            DX = grads[0].View, DDt = grads[1].View, DDtBias = grads[2].View, DALog = grads[3].View, DB = grads[4].View,
            DC = grads[5].View, DD = grads[6].View, DInitial = x.Initial is null ? default : grads[7].View,
        });
        return [y.ToArray(), final.ToArray(), .. grads.Select(t => t.ToArray())];
    }

    private static double SsdCase(Session d, Random random, SsdCheckSize size, bool backward)
    {
        var x = RandomSsdData(random, size);
        if (!backward)
        {
            var result = RunSsd(d, x, size.Chunk);
            var (yRef, finalRef) = Ssd(x);
            return Math.Max(RelativeError(result[0], yRef), RelativeError(result[1], finalRef));
        }
        var dy = Randoms(random, x.X.Length);
        // Random starting gradients: the kernels must add to them, not overwrite them.
        int[] lengths = [x.X.Length, x.Dt.Length, x.Heads, x.Heads, x.B.Length, x.C.Length, x.Heads, x.Batch * x.Heads * x.HeadDim * x.States];
        var starts = lengths.Select(length => Randoms(random, length)).ToArray();
        var grads = RunSsd(d, x, size.Chunk, dy, starts);
        var r = SsdBackward(x, dy);
        var expected = new[] { r.DX, r.DDt, r.DDtBias, r.DALog, r.DB, r.DC, r.DD, r.DInitial };
        int checkedCount = size.WithState ? expected.Length : expected.Length - 1;
        return Enumerable.Range(0, checkedCount)
            .Max(i => RelativeError(grads[2 + i].Select((g, k) => g - starts[i][k]).ToArray(), expected[i]));
    }
}
