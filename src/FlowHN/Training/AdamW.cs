using FlowHN.Autograd;
using FlowHN.Kernels;
using FlowHN.Runtime;
using FlowHN.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Training;

/// <summary>
/// AdamW with decoupled weight decay (only on parameters marked for it) and clipping by global gradient norm.
/// The norm and the clip factor are computed on the device, so a step needs no host round trip.
/// </summary>
public sealed class AdamW : IDisposable
{
    private readonly Session device;
    private readonly Dictionary<Parameter, (Tensor M, Tensor V)> state = new();
    private readonly ParameterStore store;     // the parameters' flat buffers: flat moments, few launches
    private readonly DeviceBlock flatM, flatV; // allocated once, at the store's exact length
    private readonly Tensor total;    // [global sum of squares]
    private readonly Tensor norm;     // [global norm, clip factor]

    /// <param name="parameters">a whole model's parameters, all in one <see cref="ParameterStore"/>.</param>
    public AdamW(Session device, IReadOnlyList<Parameter> parameters, double beta1 = 0.9, double beta2 = 0.95,
        double eps = 1e-8, double weightDecay = 0.1, double maxGradNorm = 1.0)
    {
        this.device = device;
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = eps;
        WeightDecay = weightDecay;
        MaxGradNorm = maxGradNorm;
        store = parameters.Count > 0 && parameters[0].Store is { } s && s.Parameters.Count == parameters.Count &&
                parameters.All(p => p.Store == s)
            ? s
            : throw new ArgumentException("AdamW takes a whole model's parameters, allocated in one store (AllocateParameters).");
        flatM = Zeroed(device, store.Length);
        flatV = Zeroed(device, store.Length);
        // Each parameter's moments are views of the flat buffers at the parameter's offset (for checkpoints).
        foreach (var p in parameters)
            state[p] = (new Tensor(device, flatM, store.Offsets[p], p.Shape, Tensor.ContiguousStrides(p.Shape), DType.Float32, ownsBlock: false),
                        new Tensor(device, flatV, store.Offsets[p], p.Shape, Tensor.ContiguousStrides(p.Shape), DType.Float32, ownsBlock: false));
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
        device.Kernels.Reduce.Reduce(ReductionKind.SumOfSquares, store.Gradients, total.View);
        device.Kernels.Optim.ClipFactor(total.View, norm.View, (float)MaxGradNorm);
        var clipFactor = norm.View.SubView(1, 1);
        // Two launches for all parameters: the decayed range, then the rest.
        long decayed = store.DecayLength, rest = store.Length - store.DecayLength;
        Update(store.Weights.SubView(0, decayed), store.Gradients.SubView(0, decayed),
            flatM.View.SubView(0, decayed), flatV.View.SubView(0, decayed), clipFactor, lr, decay: true);
        Update(store.Weights.SubView(decayed, rest), store.Gradients.SubView(decayed, rest),
            flatM.View.SubView(decayed, rest), flatV.View.SubView(decayed, rest), clipFactor, lr, decay: false);
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

    /// <summary>The last step's global gradient norm before clipping, on the device (one element).</summary>
    internal ArrayView<float> GradNormView => norm.View.SubView(0, 1);

    /// <summary>The global gradient norm before clipping of the last step (reads the device).</summary>
    public float LastGradNorm() => norm.ToArray()[0];

    /// <summary>Device bytes of the two moment buffers.</summary>
    public long MomentBytes => 2 * flatM.RequestedElements * sizeof(float);

    private static DeviceBlock Zeroed(Session device, long length)
    {
        var block = device.Runtime.Allocator.AllocateExact(Math.Max(1, length));
        Launch.ZeroFill(device.Runtime, block.View);
        return block;
    }

    public void Dispose()
    {
        device.Runtime.Allocator.Free(flatM);
        device.Runtime.Allocator.Free(flatV);
        total.Dispose();
        norm.Dispose();
    }
}
