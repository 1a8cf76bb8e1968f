using FlowHN.Runtime;

namespace FlowHN.Inference;

/// <summary>
/// How the next token is drawn from the logits: softmax(logits / temperature) restricted to the top-k tokens and
/// then to the smallest set whose probability reaches top-p (nucleus). Temperature 0 is greedy.
/// </summary>
public sealed record SamplingOptions(double Temperature = 0.8, int TopK = 40, double TopP = 1.0)
{
    /// <summary>One clear message per bad value, naming the CLI option.</summary>
    public void Validate()
    {
        if (!double.IsFinite(Temperature) || Temperature < 0)
            throw new UserException($"--temperature must be a finite number >= 0 (0 = greedy), got {Temperature}.");
        if (TopK < 0) throw new UserException($"--top-k must be >= 0 (0 = all tokens), got {TopK}.");
        if (!double.IsFinite(TopP) || TopP <= 0 || TopP > 1)
            throw new UserException($"--top-p must lie in (0, 1] (1 = no nucleus cut), got {TopP}.");
    }

    public int Sample(float[] logits, Random random)
    {
        var order = Enumerable.Range(0, logits.Length).OrderByDescending(i => logits[i]).ThenBy(i => i).ToArray();
        if (Temperature <= 0) return order[0];
        int k = TopK > 0 ? Math.Min(TopK, order.Length) : order.Length;
        double max = logits[order[0]];
        var weights = order.Take(k).Select(i => Math.Exp((logits[i] - max) / Temperature)).ToArray();
        double total = weights.Sum();
        if (TopP < 1)
        {
            // Keep the most likely tokens until their probability reaches top-p (at least one).
            double cumulative = 0;
            int kept = 0;
            while (kept < k && (kept == 0 || cumulative < TopP * total)) cumulative += weights[kept++];
            k = kept;
            total = cumulative;
        }
        double u = random.NextDouble() * total;
        for (int j = 0; j < k; j++)
        {
            u -= weights[j];
            if (u <= 0) return order[j];
        }
        return order[k - 1];
    }
}
