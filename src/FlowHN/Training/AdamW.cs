using FlowHN.Autograd;
using FlowHN.Kernels;
using FlowHN.Runtime;
using FlowHN.Tensors;
using ILGPU;

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
    private readonly ParameterStore? store;     // when all parameters are packed: flat moments, few launches
    private readonly Tensor? flatM, flatV;
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
        store = parameters.Count > 0 && parameters[0].Store is { } s && s.Parameters.Count == parameters.Count &&
                parameters.All(p => p.Store == s) ? s : null;
        if (store is not null)
        {
            flatM = Tensor.Zeros(device, [(int)store.Length]);
            flatV = Tensor.Zeros(device, [(int)store.Length]);
            // Each parameter's moments are views of the flat buffers at the parameter's offset (for checkpoints).
            foreach (var p in parameters)
                state[p] = (flatM.ViewAs(p.Shape, Tensor.ContiguousStrides(p.Shape), store.Offsets[p]),
                            flatV.ViewAs(p.Shape, Tensor.ContiguousStrides(p.Shape), store.Offsets[p]));
        }
        else
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
        if (store is not null) reduce.Reduce(ReductionKind.SumOfSquares, store.Gradients, total.View);
        else
        {
            for (int i = 0; i < parameters.Count; i++)
                reduce.Reduce(ReductionKind.SumOfSquares, parameters[i].Grad!.View, squares.View, i);
            reduce.Reduce(ReductionKind.Sum, squares.View, total.View);
        }
        device.Kernels.Optim.ClipFactor(total.View, norm.View, (float)MaxGradNorm);
        var clipFactor = norm.View.SubView(1, 1);
        if (store is not null)
        {
            // Two launches for all parameters: the decayed range, then the rest.
            Update(store.Weights.SubView(0, store.DecayLength), store.Gradients.SubView(0, store.DecayLength),
                flatM!.View.SubView(0, store.DecayLength), flatV!.View.SubView(0, store.DecayLength), clipFactor, lr, decay: true);
            long rest = store.Length - store.DecayLength;
            Update(store.Weights.SubView(store.DecayLength, rest), store.Gradients.SubView(store.DecayLength, rest),
                flatM.View.SubView(store.DecayLength, rest), flatV.View.SubView(store.DecayLength, rest), clipFactor, lr, decay: false);
            return;
        }
        foreach (var p in parameters)
        {
            var (m, v) = state[p];
            Update(p.View, p.Grad!.View, m.View, v.View, clipFactor, lr, p.WeightDecay);
        }
    }

    private void Update(ArrayView<float> param, ArrayView<float> grad, ArrayView<float> m, ArrayView<float> v, ArrayView<float> clipFactor,
        double lr, bool decay)
    {
        if (param.Length == 0) return;
        device.Kernels.Optim.AdamW(param, grad, m, v, clipFactor, new AdamWStep
        {
            LearningRate = (float)lr,
            Beta1 = (float)Beta1,
            Beta2 = (float)Beta2,
            Epsilon = (float)Epsilon,
            WeightDecay = decay ? (float)WeightDecay : 0f,
            BiasCorrection1 = (float)(1 - Math.Pow(Beta1, StepCount)),
            BiasCorrection2 = (float)(1 - Math.Pow(Beta2, StepCount)),
        });
    }

    /// <summary>The global gradient norm before clipping of the last step (reads the device).</summary>
    public float LastGradNorm() => norm.ToArray()[0];

    public void Dispose()
    {
        foreach (var (m, v) in state.Values) // views of the flat moments own nothing
        {
            m.Dispose();
            v.Dispose();
        }
        flatM?.Dispose();
        flatV?.Dispose();
        squares.Dispose();
        total.Dispose();
        norm.Dispose();
    }
}
