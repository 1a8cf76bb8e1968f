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
        double eps = 1e-8, double weightDecay = 0.1, double maxGradNorm = 1.0, ParameterShard? shard = null)
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
        if (shard is not null && shard.Total != store.Length)
            throw new ArgumentException($"The shard splits {shard.Total} elements, the store holds {store.Length}.");
        Shard = shard;
        flatM = Zeroed(device, shard?.Length ?? store.Length);
        flatV = Zeroed(device, shard?.Length ?? store.Length);
        // Each parameter's moments are views of the flat buffers at the parameter's offset (for checkpoints).
        if (shard is null)
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

    /// <summary>ZeRO-1: the range of the flat buffers this optimizer keeps moments for and updates; null: all of it.</summary>
    public ParameterShard? Shard { get; }

    /// <summary>ZeRO-1: sums the gradient norm over the ranks and gathers the updated shards (set with <see cref="Shard"/>).</summary>
    public IShardSync? Sync { get; set; }

    /// <summary>A parameter's moments (not with a <see cref="Shard"/>: see <see cref="ShardMoments"/>).</summary>
    public (Tensor M, Tensor V) StateOf(Parameter p) => Shard is null
        ? state[p]
        : throw new InvalidOperationException("A sharded optimizer keeps only its shard's moments.");

    /// <summary>The moments of the shard, read to host memory (ZeRO-1 checkpoints).</summary>
    public (float[] M, float[] V) ShardMoments()
    {
        long length = Shard?.Length ?? store.Length;
        var m = new float[length];
        var v = new float[length];
        var stream = device.Runtime.CurrentStream;
        if (length > 0)
        {
            flatM.View.SubView(0, length).CopyToCPU(stream.Native, m.AsSpan()); // span overloads pin the arrays
            flatV.View.SubView(0, length).CopyToCPU(stream.Native, v.AsSpan());
        }
        stream.Synchronize();
        return (m, v);
    }

    /// <summary>Writes the first (or <paramref name="second"/>) moment of elements [<paramref name="start"/>, ...) of the shard (ZeRO-1 resume).</summary>
    internal void WriteShardMoment(bool second, long start, ReadOnlySpan<float> values)
    {
        if (values.IsEmpty) return;
        var stream = device.Runtime.CurrentStream;
        (second ? flatV : flatM).View.SubView(start, values.Length)
            .CopyFromCPU(stream.Native, values); // pinned for the copy
        stream.Synchronize(); // the span is the caller's reused buffer
    }

    /// <summary>Clips and applies one update at learning rate <paramref name="lr"/>.</summary>
    public void Step(double lr)
    {
        StepCount++;
        // With a shard only its gradients are summed over the ranks (reduce-scatter): the global norm is the sum
        // of every rank's shard sum of squares.
        var shard = Shard ?? new ParameterShard(0, 1, store.Length, 0, store.Length);
        if (Shard is not null && Sync is null) throw new InvalidOperationException("A sharded optimizer needs its Sync.");
        device.Kernels.Reduce.Reduce(ReductionKind.SumOfSquares, store.Gradients.SubView(shard.Offset, shard.Length), total.View);
        Sync?.SumOverRanks(total.View);
        device.Kernels.Optim.ClipFactor(total.View, norm.View, (float)MaxGradNorm);
        var clipFactor = norm.View.SubView(1, 1);
        // Two launches for all (the shard's) parameters: the decayed range, then the rest.
        var decayed = shard.Overlap(0, store.DecayLength);
        var rest = shard.Overlap(store.DecayLength, store.Length - store.DecayLength);
        UpdateRange(shard, decayed, clipFactor, lr, decay: true);
        UpdateRange(shard, rest, clipFactor, lr, decay: false);
        Sync?.GatherWeights();
    }

    /// <summary>Updates elements [start, start + length) of the shard (moments indexed from the shard's start).</summary>
    private void UpdateRange(ParameterShard shard, (long Start, long Length) range, ArrayView<float> clipFactor, double lr, bool decay)
    {
        if (range.Length == 0) return;
        long at = shard.Offset + range.Start;
        Update(store.Weights.SubView(at, range.Length), store.Gradients.SubView(at, range.Length),
            flatM.View.SubView(range.Start, range.Length), flatV.View.SubView(range.Start, range.Length), clipFactor, lr, decay);
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
