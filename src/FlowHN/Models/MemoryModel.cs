using FlowHN.Kernels;
using FlowHN.Nn;

namespace FlowHN.Models;

/// <summary>How a step keeps its layers' activations (see <see cref="Autograd.MemorySegment"/>).</summary>
public enum ActivationMemory
{
    /// <summary>Everything until the step ends (<see cref="Autograd.Tape.ReleaseSegments"/> off).</summary>
    Kept,
    /// <summary>Each layer's until its backward is done (the default).</summary>
    Released,
    /// <summary>Only each layer's output; the backward runs the layer again (<see cref="LanguageModel.Recompute"/>).</summary>
    Recomputed,
}

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
/// <para>Activations: what a step allocates, added up module by module: each differentiable op's output and, in
/// the backward, its gradient (the logits' gradient overwrites the logits); each view's gradient (a view shares
/// its source's memory but has a gradient of its own); saved statistics (RMSNorm's 1/rms per row, attention's
/// log-sum-exp per row and head); backward scratch (attention's delta, the scan's and the conv's partial sums,
/// sized by the kernels' launch shapes for the device, <see cref="KernelGeometry"/>) and the scan's saved
/// chunk-boundary states. Reduction partials of weight gradients (well under 1%) are left out.</para>
/// <para>The peak: everything the forward made stays until the backward reaches it. Each decoder layer or FlowHN
/// block is a <see cref="Autograd.MemorySegment"/> that returns its memory once its backward is done, so the peak
/// comes early in the backward: the whole forward, the head's backward and the last layer's backward. With
/// recomputation the forward keeps only each layer's output, and the peak is those outputs, the head's forward
/// and backward, and one layer's forward and backward.</para>
/// <para>Bytes are what tensors ask for; the caching allocator rounds blocks up to its size buckets, which bench
/// reports separately as the peak in use.</para>
/// </summary>
public static class MemoryModel
{
    public static MemoryEstimate Estimate(ModelConfig c, int batch, int seqLen, KernelGeometry geometry,
        ActivationMemory activations = ActivationMemory.Released)
    {
        long state = 16 * LanguageModel.CountParameters(c);
        var step = new Tally(c, batch, geometry);
        long tokens = (long)batch * seqLen;
        // Token ids, targets and the embedding's backward plan (order, and distinct ids with their starts).
        step.Saved(3 * tokens + 2 * Math.Min(tokens, c.VocabSize));
        step.Output(tokens * c.Dim);                 // embedding
        step.EndSegment();
        var kinds = c.Architecture.LayerKinds(c);
        for (int layer = 0; layer < kinds.Count; layer++)
        {
            if (kinds[layer] == MixerKind.Parallel) step.ParallelBlock(seqLen, Routing(c, layer, seqLen));
            else step.DecoderLayer(seqLen, kinds[layer]);
            step.EndSegment();
        }
        step.Norm(tokens);                           // final norm
        step.Saved(tokens * c.VocabSize + 2 * tokens); // logits (their gradient overwrites them), loss and log-sum-exp rows
        step.EndSegment();
        return new MemoryEstimate(state, step.PeakFloats(activations, tokens * c.Dim) * sizeof(float) / tokens);
    }

    private static BlockRouting Routing(ModelConfig c, int block, int seqLen)
    {
        int attentionTokens = c.Split is SplitStrategy.FlopAware or SplitStrategy.FlopAwareCirculating
            ? FlowHNLM.Balance(c, seqLen).AttentionTokens
            : 0;
        return SplitPlanner.Plan(c.Split, c.SplitContext, block, c.Layers, seqLen, attentionTokens);
    }

    /// <summary>
    /// Floats a step allocates, added up module by module in the order the forward runs, in segments: the part
    /// before the first layer, one per layer or block, and the part after the last.
    /// </summary>
    private sealed class Tally(ModelConfig c, int batch, KernelGeometry geometry)
    {
        private readonly List<(double Forward, double Backward)> segments = new();
        private double forward, backward;

        /// <summary>A differentiable op's output and its gradient.</summary>
        public void Output(long floats)
        {
            forward += floats;
            backward += floats;
        }

        /// <summary>A view's gradient (its forward shares the source's memory).</summary>
        public void View(long floats) => backward += floats;

        /// <summary>What the forward saves without a gradient: statistics, ids, boundary states, the logits.</summary>
        public void Saved(long floats) => forward += floats;

        /// <summary>Scratch of the backward.</summary>
        public void Scratch(long floats) => backward += floats;

        public void EndSegment()
        {
            segments.Add((forward, backward));
            forward = backward = 0;
        }

        /// <summary>
        /// The most floats live at once. The forward allocates everything; the backward visits the segments in
        /// reverse, each allocating its backward and then (with releases) returning its forward and backward. The
        /// tally counts a tensor's gradient where the tensor was made, but a segment's backward runs while the
        /// gradient of its output (made by the segment after it) and that of its input (made now, kept for the
        /// segment before it) are both live: one [B, L, d] more than the tally, everywhere except the embedding.
        /// With recomputation a layer's forward is allocated again in its backward, next to its kept output.
        /// </summary>
        public double PeakFloats(ActivationMemory mode, long carried)
        {
            bool recompute = mode == ActivationMemory.Recomputed;
            int last = segments.Count - 1; // segments[0] is before the first layer, segments[last] after the last
            double live = segments.Select((s, i) => recompute && i > 0 && i < last ? carried : s.Forward).Sum(), peak = live;
            for (int i = last; i >= 0; i--)
            {
                bool layer = i > 0 && i < last;
                double allocated = segments[i].Backward + (recompute && layer ? segments[i].Forward : 0);
                peak = Math.Max(peak, live + allocated + (i > 0 ? carried : 0));
                live += allocated;
                if (layer && mode != ActivationMemory.Kept) live -= segments[i].Forward + segments[i].Backward;
                if (layer && recompute) live -= carried; // the output it kept
            }
            return peak;
        }

        /// <summary>RMSNorm over <paramref name="rows"/> rows of d: the output and 1/rms per row.</summary>
        public void Norm(long rows)
        {
            Output(rows * c.Dim);
            Saved(rows);
        }

        /// <summary>Fused residual add + RMSNorm: the sum, the normalised sum and 1/rms per row.</summary>
        private void AddNorm(long rows)
        {
            Output(2 * rows * c.Dim);
            Saved(rows);
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
            Saved((long)batch * queries * c.Heads);   // log-sum-exp
            Scratch((long)batch * queries * c.Heads); // delta
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
            Scratch(CausalConvLauncher.BackwardScratchLength(
                CausalConvLauncher.ShapeFor(geometry, batch, length, s.Inner, s.ConvWidth, silu: true, hasState: false)));
            Output(rows * dbc);
            Output(rows * dbc);
            Output(rows * dbc);
            Saved(3 * rows);
            Output(rows * s.Inner);
            var scan = SelectiveScanLauncher.ShapeFor(geometry, batch, length, s.Inner, s.State, hasInitial: false);
            Output(rows * s.Inner);
            Saved(SelectiveScanLauncher.BoundaryLength(scan));
            Scratch(SelectiveScanLauncher.BackwardScratchLength(scan));
            if (outputProjection) Output(rows * s.Dim);
        }

        /// <summary>
        /// The Mamba-2 mixer: in_proj, the z, xBC and dt slices, the conv, the x, B and C slices and their views, the
        /// SSD scan (its chunk states, the forward's scratch and the backward's), the y view, silu(z), the gate,
        /// the gated norm over d_inner, out_proj.
        /// </summary>
        private void Mamba2(int length, Mamba2Shape s, bool outputProjection = true)
        {
            long rows = (long)batch * length, gn = (long)s.Groups * s.States;
            Output(rows * s.InProjection);
            Output(rows * (s.Inner + s.ConvChannels + s.Heads));
            Output(rows * s.ConvChannels);
            Scratch(CausalConvLauncher.BackwardScratchLength(
                CausalConvLauncher.ShapeFor(geometry, batch, length, s.ConvChannels, s.ConvWidth, silu: true, hasState: false)));
            Output(rows * (s.Inner + 2 * gn));
            View(rows * (s.Inner + 2 * gn));
            var scan = SsdLauncher.Shape(batch, length, s.Heads, s.HeadDim, s.Groups, s.States, hasInitial: false, s.Chunk);
            Output(rows * s.Inner);
            Saved(scan.ChunkStatesLength + SsdLauncher.ForwardScratchLength(scan, keepsStates: true));
            Scratch(SsdLauncher.BackwardScratchLength(scan));
            View(rows * s.Inner);
            Output(3 * rows * s.Inner);
            Saved(rows);
            if (outputProjection) Output(rows * s.Dim);
        }

        /// <summary>Hymba's mixer: attention and SSM heads on the same tokens, each normalised, averaged, projected.</summary>
        private void Hymba(int length)
        {
            long rows = (long)batch * length;
            Attention(length, length, rope: false, outputProjection: false);
            Norm(rows);
            if (c.Ssm == SsmKind.Mamba2) Mamba2(length, SequentialLM.Hymba2Shape(c), outputProjection: false);
            else Mamba(length, SequentialLM.HymbaShape(c), outputProjection: false);
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
                case MixerKind.Mamba2: Mamba2(length, c.Mamba2); break;
                case MixerKind.Hymba: Hymba(length); break;
                default: throw SequentialLM.NotADecoderLayer(kind);
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
            DecoderLayer(scanned, SsmWords.MixerOf(c));
            if (split) Output(2 * all);                   // merged tokens, W_b
            else Output(2L * c.Dim * c.Dim + 3 * all);    // W_b's two halves, the two products, their sum
            Output(all);                                  // y = x + fused
            Norm((long)batch * seqLen);
            Output(2 * all);                              // W_f, out = y + ...
        }
    }
}
