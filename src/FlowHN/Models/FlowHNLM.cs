using FlowHN.Autograd;
using FlowHN.Inference;
using FlowHN.Nn;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Models;

/// <summary>
/// FlowHN: token embedding, N parallel blocks (attention and Mamba branches side by side, tokens split between
/// them by the configured strategy, outputs fused), final RMSNorm, untied LM head. Attention has no positional
/// encoding here; position comes from the SSM branch, as in Jamba and the paper.
/// </summary>
public sealed class FlowHNLM : LanguageModel
{
    private readonly Embedding embed;
    private readonly List<ParallelBlock> blocks = new();
    private readonly RmsNorm finalNorm;
    private readonly LmHead head;
    private readonly RoutingTables routing;
    private BranchStreams? streams;

    public FlowHNLM(Session device, ModelConfig config, int seed) : base(device, config)
    {
        var random = new Random(seed);
        double residualStd = 0.02 / Math.Sqrt(2.0 * config.Layers);
        embed = Add(new Embedding(device, "embed", config.VocabSize, config.Dim, random));
        bool concat = config.Split == SplitStrategy.None;
        for (int i = 0; i < config.Layers; i++)
            blocks.Add(Add(new ParallelBlock(device, $"blocks.{i}", i, config, concat, random, residualStd)));
        finalNorm = Add(new RmsNorm(device, "final_norm", config.Dim, config.NormEps));
        head = Add(new LmHead(device, "lm_head", config.Dim, config.VocabSize, random));
        routing = new RoutingTables(device, config.Split, config.SplitContext, config.Layers, AttentionTokens);
        BranchConcurrency = device.Runtime.IsCuda;
    }

    /// <summary>The attention branch's token count for a sequence length (fa, fac).</summary>
    public int AttentionTokens(int seqLen) => Balance(Config, seqLen).AttentionTokens;

    /// <summary>How the configured ratio splits a sequence and what each branch then costs.</summary>
    public static SplitBalance Balance(ModelConfig c, int seqLen)
    {
        var costs = BranchCostsOf(c, seqLen);
        return c.SplitRatio switch
        {
            AttentionShare.FlopBalanced => SplitRatio.Solve(costs, c.SplitContext, seqLen),
            AttentionShare.Fixed share => SplitRatio.Balance(costs, c.SplitContext, seqLen, SplitRatio.Fixed(share.Value, seqLen)),
            _ => throw new ArgumentException($"Split ratio '{c.SplitRatio}' is measured on a device: resolve it with SplitTimer.Resolve before " +
                                             "the model is built."),
        };
    }

    /// <summary>
    /// Per-token FLOPs of the two branches: attention from the config, the SSM branch its Mamba-1 or Mamba-2 mixer
    /// and MLP. Mamba-2's chunked scan costs more per token with longer chunks; it is counted at chunks of
    /// min(chunk, L), which is exact unless the branch gets fewer tokens than a chunk.
    /// </summary>
    private static BranchCosts BranchCostsOf(ModelConfig c, int seqLen) =>
        BranchCosts.FromConfig(c, (c.Ssm == SsmKind.Mamba2 ? FlopModel.Mamba2Layer(c.Mamba2, seqLen) : FlopModel.MambaLayer(c.Mamba))
                                  + FlopModel.SwiGluMlp(c.Dim, c.MlpHidden));

    /// <summary>
    /// Run each block's two branches concurrently on two streams (default on CUDA). Results are identical either
    /// way; turning it off is the ablation. On the CPU accelerator streams are serial, so it only exercises the
    /// ordering code.
    /// </summary>
    public bool BranchConcurrency
    {
        get => streams is not null;
        set
        {
            if (value && streams is null) streams = new BranchStreams(Device);
            if (!value && streams is not null)
            {
                Device.Runtime.Synchronize();
                streams.Dispose();
                streams = null;
            }
        }
    }

    /// <summary>The branch streams in words (priorities as the driver reports them), or "off".</summary>
    public string BranchStreamsDescription => streams?.Describe() ?? "off";

    public override Tensor Forward(TokenIndex ids, int batch, int seqLen)
    {
        var x = embed.Forward(ids);
        foreach (var block in blocks)
            x = MemorySegment.Run(Device, x, (input, again) => block.Forward(input, batch, routing, streams, ObserverFor(again)),
                Recompute);
        return head.Forward(finalNorm.Forward(x));
    }

    /// <summary>
    /// Setting it makes every forward route tokens by absolute position with the plan of this length (see
    /// <see cref="PositionRouting"/>); forwards at this length are unchanged.
    /// </summary>
    public override int? TrainedLength
    {
        get => base.TrainedLength;
        set
        {
            base.TrainedLength = value;
            routing.ByPosition = value is int length && Config.Split != SplitStrategy.None
                ? new PositionRouting(Config.Split, Config.SplitContext, Config.Layers, length,
                    Config.Split is SplitStrategy.FlopAware or SplitStrategy.FlopAwareCirculating && length >= 2 ? AttentionTokens(length) : 0)
                : null;
        }
    }

    public override InferenceState CreateInferenceState() => new(blocks.Select(b => b.CreateCache()).ToList());

    public override Tensor ForwardCached(TokenIndex ids, int seqLen, InferenceState state)
    {
        if (Config.Split != SplitStrategy.None && routing.ByPosition is null)
            throw new InvalidOperationException("Decoding a split FlowHN model needs its TrainedLength (the routing rule's period).");
        var x = embed.Forward(ids);
        for (int i = 0; i < blocks.Count; i++)
            x = blocks[i].ForwardCached(x, state.Position, routing.ByPosition, Config.SplitContext, (HybridCache)state.Layers[i]);
        state.Advance(seqLen);
        return head.Forward(finalNorm.Forward(x));
    }

    public override void Dispose()
    {
        BranchConcurrency = false;
        routing.Dispose();
        base.Dispose();
    }
}
