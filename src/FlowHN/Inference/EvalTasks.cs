using System.Text;
using FlowHN.Data;
using FlowHN.Runtime;

namespace FlowHN.Inference;

/// <summary>One task's outcome: its name, what it read, how many items, and its metrics by name.</summary>
public sealed record TaskResult(string Task, string Data, int Items, IReadOnlyDictionary<string, double> Metrics);

/// <summary>
/// Zero-shot tasks with lm-evaluation-harness conventions: context and continuation tokenized separately, an
/// empty context replaced by the end-of-text token, continuations scored by the sum of their tokens' log-likelihoods.
/// </summary>
public sealed class EvalTasks(Scorer scorer, ITokenizer tokenizer)
{
    /// <summary>Called with (items done, items in all) while a task runs.</summary>
    public Action<string, int, int>? Progress { get; init; }

    /// <summary>
    /// Last-word cloze (LAMBADA's protocol): acc = the target's tokens are all the greedy choice; ppl =
    /// exp(-mean over items of the target's log-likelihood).
    /// </summary>
    public TaskResult Cloze(string path)
    {
        var items = EvalItems.ReadCloze(path);
        var scores = Run("lambada", items.Select(i => Request(i.Context, i.Target)).ToList(), greedy: true);
        return new TaskResult("lambada", path, items.Count, new Dictionary<string, double>
        {
            ["acc"] = scores.Average(s => s.Greedy ? 1.0 : 0.0),
            ["ppl"] = Math.Exp(-scores.Average(s => s.LogLikelihood)),
        });
    }

    /// <summary>
    /// Multiple choice: acc picks the choice with the highest log-likelihood, acc_norm the highest log-likelihood per
    /// character of the choice (as lm-eval reports for hellaswag, piqa, arc and winogrande).
    /// </summary>
    public TaskResult Choice(string path)
    {
        var items = EvalItems.ReadChoice(path);
        var requests = items.SelectMany(i => i.Choices.Select(c => Request(i.Context, c))).ToList();
        var scores = Run("choice", requests, greedy: false);
        int next = 0;
        double correct = 0, correctNorm = 0;
        foreach (var item in items)
        {
            var ll = scores.Skip(next).Take(item.Choices.Length).Select(s => s.LogLikelihood).ToArray();
            next += item.Choices.Length;
            if (ArgMax(ll) == item.Gold) correct++;
            if (ArgMax(ll.Select((v, i) => v / item.Choices[i].Length).ToArray()) == item.Gold) correctNorm++;
        }
        return new TaskResult("choice", path, items.Count, new Dictionary<string, double>
        {
            ["acc"] = correct / items.Count,
            ["acc_norm"] = correctNorm / items.Count,
        });
    }

    /// <summary>
    /// Perplexity of plain text (a .txt file, or every .txt file of a folder, each a separate document): windows of
    /// max-length + 1 tokens overlapping by one, so every token but a document's first is predicted once. Reports
    /// per token and per UTF-8 byte (exp of the total loss over the bytes), so byte and GPT-2 models compare.
    /// </summary>
    public TaskResult Perplexity(string path, int maxLength)
    {
        var files = Directory.Exists(path) ? Directory.GetFiles(path, "*.txt").Order(StringComparer.Ordinal).ToArray()
            : File.Exists(path) ? [path]
            : throw new UserException($"--data {path} is neither a text file nor a folder.");
        if (files.Length == 0) throw new UserException($"--data {path} holds no .txt file.");
        var requests = new List<ScoreRequest>();
        long bytes = 0;
        foreach (var file in files)
        {
            string text = File.ReadAllText(file, Encoding.UTF8);
            bytes += Encoding.UTF8.GetByteCount(text);
            var tokens = tokenizer.Encode(text);
            for (int start = 0; start + 1 < tokens.Length; start += maxLength)
            {
                var window = tokens[start..Math.Min(tokens.Length, start + maxLength + 1)];
                requests.Add(new ScoreRequest(window[..1], window[1..]));
            }
        }
        if (requests.Count == 0) throw new UserException($"--data {path} has fewer than 2 tokens of text.");
        var scores = Run("ppl", requests, greedy: false);
        double loss = -scores.Sum(s => s.LogLikelihood);
        long predicted = requests.Sum(r => (long)r.Continuation.Length);
        return new TaskResult("ppl", path, files.Length, new Dictionary<string, double>
        {
            ["tokens"] = predicted,
            ["ppl_token"] = Math.Exp(loss / predicted),
            ["ppl_byte"] = Math.Exp(loss / bytes),
            ["bits_per_byte"] = loss / bytes / Math.Log(2),
        });
    }

    private ScoreRequest Request(string context, string continuation)
    {
        var contextTokens = context.Length == 0 ? [tokenizer.EndOfText] : tokenizer.Encode(context);
        if (contextTokens.Length == 0) contextTokens = [tokenizer.EndOfText];
        return new ScoreRequest(contextTokens, tokenizer.Encode(continuation));
    }

    private ContinuationScore[] Run(string task, IReadOnlyList<ScoreRequest> requests, bool greedy) =>
        scorer.Score(requests, greedy, done => Progress?.Invoke(task, done, requests.Count));

    private static int ArgMax(double[] values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
            if (values[i] > values[best]) best = i;
        return best;
    }
}
