using FlowHN.Autograd;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Nn;

/// <summary>y = x W^T, W [out, in], no bias (as in the paper's projections).</summary>
public sealed class Linear : Module
{
    public Linear(Session device, string name, int inFeatures, int outFeatures, Random random, double std = 0.02)
        : base(device, name)
    {
        Weight = AddParameter("weight", [outFeatures, inFeatures], ParameterInit.Normal(std), weightDecay: true, random);
    }

    public Parameter Weight { get; }

    public Tensor Forward(Tensor x) => Ops.Linear(x, Weight);
}

/// <summary>RMSNorm over the last axis with a learned gain (initialised to 1, never decayed).</summary>
public sealed class RmsNorm : Module
{
    public const float DefaultEps = 1e-6f;
    private readonly float eps;

    public RmsNorm(Session device, string name, int dim, float eps = DefaultEps) : base(device, name)
    {
        this.eps = eps;
        Weight = AddParameter("weight", [dim], ParameterInit.Constant(1f), weightDecay: false);
    }

    public Parameter Weight { get; }

    public Tensor Forward(Tensor x) => Ops.RmsNorm(x, Weight, eps);

    /// <summary>The residual add before this norm, fused with it: (x + y, norm(x + y)).</summary>
    public (Tensor Sum, Tensor Normed) ForwardAfterResidual(Tensor x, Tensor y) => Ops.AddRmsNorm(x, y, Weight, eps);
}

/// <summary>
/// Token embedding table [vocab, dim] (not decayed, as usual for embeddings), allocated with the vocabulary rounded
/// up (see <see cref="VocabularyPadding"/>); ids past the vocabulary are refused.
/// </summary>
public sealed class Embedding : Module
{
    public Embedding(Session device, string name, int vocab, int dim, Random random, double std = 0.02)
        : base(device, name)
    {
        Vocab = vocab;
        Weight = AddParameter("weight", [VocabularyPadding.Rows(vocab), dim], ParameterInit.Normal(std), weightDecay: false, random,
            realRows: vocab);
    }

    public int Vocab { get; }
    public Parameter Weight { get; }

    public Tensor Forward(TokenIndex ids) => Ops.Embedding(ids, Weight, Vocab);
}

/// <summary>
/// The untied LM head: logits = x W^T with W [vocab, dim] allocated with the vocabulary rounded up (see
/// <see cref="VocabularyPadding"/>). Forward returns the logits [.., vocab] as a view of the padded product's
/// rows, so the loss, sampling and scoring never see a padding column.
/// </summary>
public sealed class LmHead : Module
{
    public LmHead(Session device, string name, int dim, int vocab, Random random, double std = 0.02)
        : base(device, name)
    {
        Vocab = vocab;
        Weight = AddParameter("weight", [VocabularyPadding.Rows(vocab), dim], ParameterInit.Normal(std), weightDecay: true, random,
            realRows: vocab);
    }

    public int Vocab { get; }
    public Parameter Weight { get; }

    public Tensor Forward(Tensor x) => Ops.Linear(x, Weight, Vocab);
}

/// <summary>SwiGLU MLP: down(silu(gate(x)) * up(x)), no biases.</summary>
public sealed class SwiGluMlp : Module
{
    private readonly Linear gate, up, down;

    /// <param name="residualStd">init std of the down projection, which writes into the residual stream.</param>
    public SwiGluMlp(Session device, string name, int dim, int hidden, Random random, double residualStd)
        : base(device, name)
    {
        gate = Add(new Linear(device, Child("gate_proj"), dim, hidden, random));
        up = Add(new Linear(device, Child("up_proj"), dim, hidden, random));
        down = Add(new Linear(device, Child("down_proj"), hidden, dim, random, residualStd));
    }

    public Tensor Forward(Tensor x) => down.Forward(Ops.SwiGlu(gate.Forward(x), up.Forward(x)));
}
