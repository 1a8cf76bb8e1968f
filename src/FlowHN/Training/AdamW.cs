using FlowHN.Autograd;
using FlowHN.Kernels;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Training;

/// <summary>
/// AdamW with decoupled weight decay (only on parameters marked for it) and clipping by global gradient norm.
/// The norm and the clip factor are computed on the device, so a step needs no host round trip.
/// </summary>
public sealed class AdamW : IDisposable
{
    private readonly ComputeDevice device;
    private readonly IReadOnlyList<Parameter> parameters;
    private readonly Dictionary<Parameter, (Tensor M, Tensor V)> state = new();
    private readonly Tensor squares;  // per-parameter sums of squares of the gradients
    private readonly Tensor total;    // [global sum of squares]
    private readonly Tensor norm;     // [global norm, clip factor]

    public AdamW(ComputeDevice device, IReadOnlyList<Parameter> parameters, double beta1 = 0.9, double beta2 = 0.95,
        double eps = 1e-8, double weightDecay = 0.1, double maxGradNorm = 1.0)
    {
        this.device = device;
        this.parameters = parameters;
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = eps;
        WeightDecay = weightDecay;
        MaxGradNorm = maxGradNorm;
        foreach (var p in parameters) state[p] = (Tensor.Zeros(device, p.Shape), Tensor.Zeros(device, p.Shape));
        squares = Tensor.Zeros(device, [Math.Max(1, parameters.Count)]);
        total = Tensor.Zeros(device, [1]);
        norm = Tensor.Zeros(device, [2]);
    }

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Epsilon { get; }
    public double WeightDecay { get; }
    public double MaxGradNorm { get; }
    /// <summary>Updates taken so far (the t of the bias corrections).</summary>
    public int StepCount { get; set; }

    public (Tensor M, Tensor V) StateOf(Parameter p) => state[p];

    /// <summary>Clips and applies one update at learning rate <paramref name="lr"/>.</summary>
    public void Step(double lr)
    {
        StepCount++;
        var reduce = device.Kernels.Reduce;
        for (int i = 0; i < parameters.Count; i++)
            reduce.Reduce(ReductionKind.SumOfSquares, parameters[i].Grad!.View, squares.View, i);
        reduce.Reduce(ReductionKind.Sum, squares.View, total.View);
        device.Kernels.Optim.ClipFactor(total.View, norm.View, (float)MaxGradNorm);
        var clipFactor = norm.View.SubView(1, 1);
        foreach (var p in parameters)
        {
            var (m, v) = state[p];
            device.Kernels.Optim.AdamW(p.View, p.Grad!.View, m.View, v.View, clipFactor, new AdamWStep
            {
                LearningRate = (float)lr,
                Beta1 = (float)Beta1,
                Beta2 = (float)Beta2,
                Epsilon = (float)Epsilon,
                WeightDecay = p.WeightDecay ? (float)WeightDecay : 0f,
                BiasCorrection1 = (float)(1 - Math.Pow(Beta1, StepCount)),
                BiasCorrection2 = (float)(1 - Math.Pow(Beta2, StepCount)),
            });
        }
    }

    /// <summary>The global gradient norm before clipping of the last step (reads the device).</summary>
    public float LastGradNorm() => norm.ToArray()[0];

    public void Dispose()
    {
        foreach (var (m, v) in state.Values)
        {
            m.Dispose();
            v.Dispose();
        }
        squares.Dispose();
        total.Dispose();
        norm.Dispose();
    }
}
