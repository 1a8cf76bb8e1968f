using FlowHN.Autograd;
using FlowHN.Inference;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Models;

/// <summary>One block's routing with its position lists on the device (int [n] each).</summary>
public sealed record BlockTables(BlockRouting Routing, Tensor AttentionPositions, Tensor SsmPositions);

/// <summary>
/// The split plans of a model's blocks, built on the host and uploaded once per (block, sequence length).
/// The tensors are persistent: they outlive every step scope, so steady-state steps upload nothing, and they
/// are freed when the tables are disposed.
/// </summary>
public sealed class RoutingTables : IDisposable
{
    private readonly Session device;
    private readonly Func<int, int> attentionTokens;
    private readonly Dictionary<(int Block, int SeqLen), BlockTables> blocks = new();
    private readonly Dictionary<int, Tensor> allPositions = new();
    private readonly Dictionary<int, int> attentionTokensBySeqLen = new();

    /// <param name="attentionTokens">The attention token count for a sequence length (fa, fac), e.g. from
    /// <see cref="SplitRatio.Solve"/> or <see cref="SplitRatio.Fixed"/>; called once per length, never for none
    /// and ae.</param>
    public RoutingTables(Session device, SplitStrategy strategy, SplitContext context, int blockCount,
        Func<int, int> attentionTokens)
    {
        if (blockCount < 1) throw new ArgumentOutOfRangeException(nameof(blockCount), $"Need at least one block, got {blockCount}.");
        this.device = device;
        this.attentionTokens = attentionTokens;
        Strategy = strategy;
        Context = context;
        BlockCount = blockCount;
    }

    /// <summary>
    /// When set (inference), every length is routed by absolute position (see <see cref="PositionRouting"/>);
    /// at the rule's period that is the training plan itself. Unset, each length gets its own training plan.
    /// </summary>
    public PositionRouting? ByPosition
    {
        get => byPosition;
        set
        {
            byPosition = value;
            DisposeBlocks();
        }
    }

    private PositionRouting? byPosition;

    public SplitStrategy Strategy { get; }
    public SplitContext Context { get; }
    public int BlockCount { get; }

    /// <summary>The routing of block <paramref name="blockIndex"/> for sequences of <paramref name="seqLen"/> tokens.</summary>
    public BlockTables For(int blockIndex, int seqLen)
    {
        if (blocks.TryGetValue((blockIndex, seqLen), out var tables)) return tables;
        if (byPosition is not null && seqLen != byPosition.Period)
        {
            var plan = byPosition.Plan(blockIndex, seqLen);
            tables = new BlockTables(plan, Upload(plan.AttentionPositions), Upload(plan.SsmPositions));
            blocks.Add((blockIndex, seqLen), tables);
            return tables;
        }
        int a = 0;
        if (Strategy is SplitStrategy.FlopAware or SplitStrategy.FlopAwareCirculating
            && !attentionTokensBySeqLen.TryGetValue(seqLen, out a))
        {
            a = attentionTokens(seqLen);
            attentionTokensBySeqLen.Add(seqLen, a);
        }
        var routing = SplitPlanner.Plan(Strategy, Context, blockIndex, BlockCount, seqLen, a);
        tables = new BlockTables(routing, Upload(routing.AttentionPositions), Upload(routing.SsmPositions));
        blocks.Add((blockIndex, seqLen), tables);
        return tables;
    }

    /// <summary>0..seqLen-1, e.g. the key positions of attention with the prefix context.</summary>
    public Tensor AllPositions(int seqLen)
    {
        if (!allPositions.TryGetValue(seqLen, out var positions))
        {
            positions = Upload(Enumerable.Range(0, seqLen).ToArray());
            allPositions.Add(seqLen, positions);
        }
        return positions;
    }

    private Tensor Upload(int[] positions) => positions.Length == 0
        ? Tensor.Empty(device, [0], DType.Int32, persistent: true) // a branch with no token (routing by position)
        : Tensor.FromArray(device, positions, [positions.Length], persistent: true);

    public void Dispose()
    {
        DisposeBlocks();
        foreach (var t in allPositions.Values) t.Dispose();
        allPositions.Clear();
    }

    private void DisposeBlocks()
    {
        foreach (var t in blocks.Values)
        {
            t.AttentionPositions.Dispose();
            t.SsmPositions.Dispose();
        }
        blocks.Clear();
    }
}
