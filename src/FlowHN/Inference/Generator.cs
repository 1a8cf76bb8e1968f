using System.Diagnostics;
using FlowHN.Autograd;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Inference;

/// <summary>What to generate and how.</summary>
public sealed record GenerationOptions
{
    /// <summary>New tokens per prompt at most.</summary>
    public int MaxNewTokens { get; init; } = 200;
    public SamplingOptions Sampling { get; init; } = new();
    /// <summary>Sequence i samples with a generator seeded Seed + i.</summary>
    public int Seed { get; init; } = 1;
    /// <summary>
    /// Tokens the model sees at most: a longer prompt keeps its end (<see cref="PromptLimit"/>); when a sequence
    /// reaches it, decoding starts again from its last MaxContext / 2 tokens (a new prefill).
    /// </summary>
    public int MaxContext { get; init; } = 1024;
    /// <summary>
    /// Prompt tokens kept (the last ones): room is left for the new tokens, but at most half the context is given
    /// up, so generation runs without a restart unless it is longer than half the context.
    /// </summary>
    public int PromptLimit => Math.Max(MaxContext - MaxNewTokens, MaxContext / 2);
    /// <summary>Generation of a sequence stops after this token (end of text); null: never.</summary>
    public int? StopToken { get; init; }
    /// <summary>false: every token runs the whole context through the model again (for comparison).</summary>
    public bool Cached { get; init; } = true;
}

/// <summary>One prompt's outcome: the tokens it was given (after truncation) and the ones generated.</summary>
public sealed record GenerationResult(int[] Prompt, int TruncatedTokens, List<int> Tokens)
{
    public bool Stopped { get; set; }
}

/// <summary>Throughput of a generation: prompt tokens processed by the prefill, tokens produced by decoding.</summary>
public sealed record GenerationStats(long PrefillTokens, double PrefillSeconds, long DecodedTokens, double DecodeSeconds)
{
    public double PrefillTokensPerSecond => PrefillSeconds > 0 ? PrefillTokens / PrefillSeconds : 0;
    public double DecodeTokensPerSecond => DecodeSeconds > 0 ? DecodedTokens / DecodeSeconds : 0;
}

/// <summary>
/// Generation for several prompts of different lengths. Cached: each sequence keeps its own
/// <see cref="InferenceState"/>; a prefill runs each prompt once, then every round gives each unfinished
/// sequence one decode step (one token through the model: O(1) work in Mamba layers, O(context) in attention).
/// </summary>
public sealed class Generator(Session device, LanguageModel model)
{
    private sealed class Sequence(GenerationResult result, Random random) : IDisposable
    {
        public GenerationResult Result { get; } = result;
        public Random Random { get; } = random;
        public InferenceState? State { get; set; }
        public float[] Logits { get; set; } = [];
        public bool Done { get; set; }
        public IEnumerable<int> Context => Result.Prompt.Concat(Result.Tokens);
        public void Dispose() => State?.Dispose();
    }

    public (IReadOnlyList<GenerationResult> Results, GenerationStats Stats) Generate(IReadOnlyList<IReadOnlyList<int>> prompts,
        GenerationOptions options, Action<int, int>? onToken = null)
    {
        options.Sampling.Validate();
        if (options.MaxNewTokens < 0) throw new UserException($"--tokens must be >= 0, got {options.MaxNewTokens}.");
        if (options.MaxContext < 2) throw new UserException($"--max-context must be at least 2 tokens, got {options.MaxContext}.");
        var sequences = new List<Sequence>();
        for (int i = 0; i < prompts.Count; i++)
        {
            if (prompts[i].Count == 0) throw new UserException("A prompt is empty: give at least one token of text.");
            int cut = Math.Max(0, prompts[i].Count - options.PromptLimit);
            sequences.Add(new Sequence(new GenerationResult(prompts[i].Skip(cut).ToArray(), cut, new List<int>()), new Random(options.Seed + i)));
        }
        long prefillTokens = 0, decoded = 0;
        var prefillTime = new Stopwatch();
        var decodeTime = new Stopwatch();
        using var noGrad = new NoGradScope(device);
        try
        {
            prefillTime.Start();
            foreach (var s in sequences)
            {
                s.Logits = Start(s, s.Result.Prompt, options);
                prefillTokens += s.Result.Prompt.Length;
            }
            prefillTime.Stop();
            decodeTime.Start();
            while (sequences.Any(s => !s.Done))
                for (int i = 0; i < sequences.Count; i++)
                {
                    var s = sequences[i];
                    if (s.Done) continue;
                    if (s.Result.Tokens.Count >= options.MaxNewTokens)
                    {
                        s.Done = true;
                        continue;
                    }
                    int next = options.Sampling.Sample(s.Logits, s.Random);
                    s.Result.Tokens.Add(next);
                    decoded++;
                    onToken?.Invoke(i, next);
                    if (next == options.StopToken) s.Result.Stopped = s.Done = true;
                    else if (s.Result.Tokens.Count < options.MaxNewTokens) s.Logits = Step(s, next, options);
                    else s.Done = true;
                }
            decodeTime.Stop();
        }
        finally
        {
            foreach (var s in sequences) s.Dispose();
        }
        return (sequences.Select(s => s.Result).ToList(),
            new GenerationStats(prefillTokens, prefillTime.Elapsed.TotalSeconds, decoded, decodeTime.Elapsed.TotalSeconds));
    }

    /// <summary>Runs a context from scratch (the prefill) and returns the logits of its last position.</summary>
    private float[] Start(Sequence s, int[] context, GenerationOptions options)
    {
        if (!options.Cached) return Uncached(context);
        s.State?.Dispose();
        s.State = model.CreateInferenceState();
        return Forward(context, s.State);
    }

    /// <summary>The logits after one more token: one decode step, or a fresh start when the context is full.</summary>
    private float[] Step(Sequence s, int token, GenerationOptions options)
    {
        var context = s.Context.ToArray();
        if (!options.Cached) return Uncached(context[Math.Max(0, context.Length - options.MaxContext)..]);
        if (s.State!.Position < options.MaxContext) return Forward([token], s.State);
        return Start(s, context[^(options.MaxContext / 2)..], options);
    }

    private float[] Forward(int[] tokens, InferenceState state)
    {
        using var scope = device.BeginScope();
        var ids = TokenIndex.FromHost(device, tokens, 1, tokens.Length);
        return LastRow(model.ForwardCached(ids, tokens.Length, state), tokens.Length);
    }

    private float[] Uncached(int[] tokens)
    {
        using var scope = device.BeginScope();
        var ids = TokenIndex.FromHost(device, tokens, 1, tokens.Length);
        return LastRow(model.Forward(ids, 1, tokens.Length), tokens.Length);
    }

    /// <summary>The last position's logits: exactly the vocabulary's (a padded model's logits are a view of them).</summary>
    private static float[] LastRow(Tensor logits, int length) => logits.RowsView().SliceView(length - 1, 1).ToArray();
}
