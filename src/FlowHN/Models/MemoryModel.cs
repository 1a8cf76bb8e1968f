using FlowHN.Kernels;
using FlowHN.Nn;

namespace FlowHN.Models;

/// <summary>What a training step holds on the device as the memory model predicts it (bytes as requested).</summary>
public sealed record MemoryEstimate(long StateBytes, double ActivationBytesPerToken)
{
    /// <summary>State plus the activations of a step of <paramref name="tokens"/> tokens.</summary>
    public double StepBytes(long tokens) => StateBytes + ActivationBytesPerToken * tokens;
}

/// <summary>
/// Analytic memory of a training step, the FLOP model's sibling.
/// <para>State: every parameter is held four times in float32 (weight, gradient, AdamW's m and v), 16 bytes. The
/// flat buffers' alignment padding (up to 64 floats per parameter tensor) and the position tables are left out:
/// about 1% of a model with 60k parameters, well under 0.1% from the tiny preset up.</para>
/// <para>Activations: every tensor a step creates lives until the step ends (so no block is reused while another
/// stream may still read it), so a step's peak is the sum of everything it allocates:
/// each differentiable op's output and, in the backward, its gradient (2 floats per element; the logits' gradient
/// overwrites the logits); each view's gradient (a view shares its source's memory but has a gradient of its
/// own); saved statistics (RMSNorm's 1/rms per row, attention's log-sum-exp and delta per row and head); the
/// scan's saved chunk-boundary states and the scan and conv backward scratch, sized by the kernels' launch shapes
/// for the device (<see cref="KernelGeometry"/>). Reduction partials of weight gradients (well under 1%) are
/// left out.</para>
/// <para>Bytes are what tensors ask for; the caching allocator rounds blocks up to its size buckets, which bench
/// reports separately as the peak in use.</para>
/// </summary>
public static class MemoryModel
{
    public static MemoryEstimate Estimate(ModelConfig c, int batch, int seqLen, KernelGeometry geometry)
    {
        long state = 16 * LanguageModel.CountParameters(c);
        var step = new Tally(c, batch, geometry);
        long tokens = (long)batch * seqLen;
        // Token ids, targets and the embedding's backward plan (order, and distinct ids with their starts).
        step.Extra(3 * tokens + 2 * Math.Min(tokens, c.VocabSize));
        step.Output(tokens * c.Dim);                 // embedding
        if (c.Arch == "flowhn")
            for (int block = 0; block < c.Layers; block++) step.ParallelBlock(seqLen, Routing(c, block, seqLen));
        else
            foreach (var kind in SequentialLM.LayerKinds(c)) step.DecoderLayer(seqLen, kind);
        step.Norm(tokens);                           // final norm
        step.Extra(tokens * c.VocabSize + 2 * tokens); // logits (their gradient overwrites them), loss and log-sum-exp rows
        return new MemoryEstimate(state, step.Floats * sizeof(float) / tokens);
    }

    private static BlockRouting Routing(ModelConfig c, int block, int seqLen)
    {
        int attentionTokens = c.Split is SplitStrategy.FlopAware or SplitStrategy.FlopAwareCirculating
            ? FlowHNLM.Balance(c, seqLen).AttentionTokens
            : 0;
        return SplitPlanner.Plan(c.Split, c.SplitContext, block, c.Layers, seqLen, attentionTokens);
    }

    /// <summary>Floats a step allocates, added up module by module in the order the forward runs.</summary>
    private sealed class Tally(ModelConfig c, int batch, KernelGeometry geometry)
    {
        public double Floats { get; private set; }

        /// <summary>A differentiable op's output and its gradient.</summary>
        public void Output(long floats) => Floats += 2.0 * floats;

        /// <summary>A view's gradient (its forward shares the source's memory).</summary>
        public void View(long floats) => Floats += floats;

        /// <summary>Saved statistics, scratch and anything else without a gradient.</summary>
        public void Extra(long floats) => Floats += floats;

        /// <summary>RMSNorm over <paramref name="rows"/> rows of d: the output and 1/rms per row.</summary>
        public void Norm(long rows, int width = 0)
        {
            Output(rows * (width > 0 ? width : c.Dim));
            Extra(rows);
        }

        /// <summary>Fused residual add + RMSNorm: the sum, the normalised sum and 1/rms per row.</summary>
        private void AddNorm(long rows)
        {
            Output(2 * rows * c.Dim);
            Extra(rows);
        }

        /// <summary>gate and up projections, their SwiGLU product, the down projection.</summary>
        private void Mlp(long rows) => Output(rows * (3L * c.MlpHidden + c.Dim));

        /// <summary>
        /// Attention over <paramref name="queries"/> rows (per sequence) with keys and values from
        /// <paramref name="keys"/> rows: projections, their [B, L, heads, headDim] views, RoPE, the attention
        /// output with log-sum-exp and delta per row and head, the merged-heads view, o_proj.
        /// </summary>
        private void Attention(int queries, int keys, bool rope, bool outputProjection)
        {
            long q = (long)batch * queries * c.Dim, kv = (long)batch * keys * c.KvHeads * c.HeadDim;
            Output(q + 2 * kv);
            View(q + 2 * kv);
            if (rope) Output(q + kv);
            Output(q);
            Extra(2L * batch * queries * c.Heads);
            View(q);
            if (outputProjection) Output(q);
        }

        /// <summary>
        /// The Mamba mixer on <paramref name="length"/> tokens per sequence: in_proj, the x and z slices, the conv,
        /// x_proj, the dt/B/C slices and their norms, dt_proj, the scan (with its boundary states and backward
        /// scratch), out_proj.
        /// </summary>
        private void Mamba(int length, MambaShape s, bool outputProjection)
        {
            long rows = (long)batch * length;
            int dbc = s.DtRank + 2 * s.State;
            Output(rows * 2 * s.Inner);
            Output(rows * 2 * s.Inner);
            Output(rows * s.Inner);
            Extra(CausalConvLauncher.BackwardScratchLength(
                CausalConvLauncher.ShapeFor(geometry, batch, length, s.Inner, s.ConvWidth, silu: true, hasState: false)));
            Output(rows * dbc);
            Output(rows * dbc);
            Output(rows * dbc);
            Extra(3 * rows);
            Output(rows * s.Inner);
            var scan = SelectiveScanLauncher.ShapeFor(geometry, batch, length, s.Inner, s.State, hasInitial: false);
            Output(rows * s.Inner);
            Extra(SelectiveScanLauncher.BoundaryLength(scan) + SelectiveScanLauncher.BackwardScratchLength(scan));
            if (outputProjection) Output(rows * s.Dim);
        }

        /// <summary>Hymba's mixer: attention and SSM heads on the same tokens, each normalised, averaged, projected.</summary>
        private void Hymba(int length)
        {
            long rows = (long)batch * length;
            Attention(length, length, rope: false, outputProjection: false);
            Norm(rows);
            Mamba(length, SequentialLM.HymbaShape(c), outputProjection: false);
            Norm(rows);
            Output(3 * rows * c.Dim); // the sum, the half, out_proj
        }

        /// <summary>A pre-norm decoder layer: norm, mixer, residual add + norm, MLP, residual add.</summary>
        public void DecoderLayer(int length, MixerKind kind)
        {
            long rows = (long)batch * length;
            Norm(rows);
            switch (kind)
            {
                case MixerKind.Attention: Attention(length, length, c.Rope, outputProjection: true); break;
                case MixerKind.Mamba: Mamba(length, c.Mamba, outputProjection: true); break;
                default: Hymba(length); break;
            }
            AddNorm(rows);
            Mlp(rows);
            Output(rows * c.Dim);
        }

        /// <summary>
        /// A FlowHN block: an alias of x for each branch, the routed tokens gathered, the attention branch (with
        /// the whole sequence normalised for its keys in the prefix context), the SSM branch, the fusion.
        /// </summary>
        public void ParallelBlock(int seqLen, BlockRouting routing)
        {
            long all = (long)batch * seqLen * c.Dim;
            View(2 * all);
            int queries = routing.AttentionPositions.Length, scanned = routing.SsmPositions.Length;
            bool split = routing.IsSplit;
            if (split) Output((long)batch * (queries + scanned) * c.Dim);
            bool prefix = split && c.SplitContext == SplitContext.Prefix;
            long queryRows = (long)batch * queries;
            Norm(queryRows);
            if (prefix) Norm((long)batch * seqLen);
            Attention(queries, prefix ? seqLen : queries, c.Rope, outputProjection: true);
            AddNorm(queryRows);
            Mlp(queryRows);
            Output(queryRows * c.Dim);
            DecoderLayer(scanned, MixerKind.Mamba);
            if (split) Output(2 * all);                   // merged tokens, W_b
            else Output(2L * c.Dim * c.Dim + 3 * all);    // W_b's two halves, the two products, their sum
            Output(all);                                  // y = x + fused
            Norm((long)batch * seqLen);
            Output(2 * all);                              // W_f, out = y + ...
        }
    }
}
