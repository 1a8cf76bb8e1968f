using FlowHN.Models;
using FlowHN.Runtime;

namespace FlowHN.Inference;

/// <summary>
/// FlowHN's token routing by absolute position, so that a forward of any length and token-by-token decoding
/// route every token the same way. Training plans a split for each batch's own length L (SplitPlanner), and
/// those plans depend on L (fa/prefix gives attention the last a tokens; fac's ring wraps at L). For inference
/// the trained length T fixes the rule: in block i, position p goes to the branch that the training plan of
/// length T gives position (p mod T). Within the trained length this is exactly the training plan; beyond it
/// the plan repeats every T positions (each period routed as a training sequence was). A sequence shorter than
/// T takes the first positions of the plan, so one branch may get no token at all in a block.
/// </summary>
public sealed class PositionRouting
{
    private readonly bool[][] toAttention;

    /// <param name="attentionTokens">The attention token count of the plan at the trained length (fa, fac).</param>
    public PositionRouting(SplitStrategy strategy, SplitContext context, int blockCount, int trainedLength, int attentionTokens)
    {
        if (strategy == SplitStrategy.None) throw new ArgumentException("PositionRouting is for split strategies.");
        if (trainedLength < 2) throw new UserException($"A split model needs a trained length of at least 2 tokens, got {trainedLength}.");
        Period = trainedLength;
        toAttention = SplitPlanner.PlanAll(strategy, context, blockCount, trainedLength, attentionTokens).Select(plan =>
        {
            var attention = new bool[trainedLength];
            foreach (int p in plan.AttentionPositions) attention[p] = true;
            return attention;
        }).ToArray();
    }

    /// <summary>The trained length T: the rule repeats every T positions.</summary>
    public int Period { get; }

    public bool ToAttention(int block, int position) => toAttention[block][position % Period];

    /// <summary>The routing of positions 0..seqLen-1 (with seqLen = T: the training plan itself).</summary>
    public BlockRouting Plan(int block, int seqLen)
    {
        var (attention, ssm) = Chunk(block, 0, seqLen);
        return new BlockRouting(seqLen, attention, ssm);
    }

    /// <summary>
    /// The tokens of a chunk at positions start..start+length-1, as indices into the chunk (0..length-1) for
    /// each branch, in order.
    /// </summary>
    public (int[] Attention, int[] Ssm) Chunk(int block, int start, int length)
    {
        var attention = new List<int>();
        var ssm = new List<int>();
        for (int i = 0; i < length; i++) (ToAttention(block, start + i) ? attention : ssm).Add(i);
        return (attention.ToArray(), ssm.ToArray());
    }
}
