using System.Globalization;
using FlowHN.Reports;

namespace FlowHN.Tests.Reports;

/// <summary>metrics.jsonl lines as flowhn train writes them, for known series.</summary>
public static class ReportData
{
    public static string Train(int step, double loss, double lr = 1e-3, double tokensPerSecond = 1000, double mfu = 0.02,
        double stepSeconds = 0.5, long tokens = -1) =>
        string.Create(CultureInfo.InvariantCulture,
            $"{{\"type\":\"train\",\"step\":{step},\"loss\":{loss:R},\"lr\":{lr:R},\"grad_norm\":0.5,\"tokens_per_s\":{tokensPerSecond:R}," +
            $"\"mfu\":{mfu:R},\"step_s\":{stepSeconds:R},\"tokens\":{(tokens < 0 ? step * 128L : tokens)}}}");

    public static string Eval(int step, double valLoss) =>
        string.Create(CultureInfo.InvariantCulture, $"{{\"type\":\"eval\",\"step\":{step},\"val_loss\":{valLoss:R},\"val_ppl\":{Math.Exp(valLoss):R}}}");

    /// <summary>
    /// A parabola over unevenly spaced steps (i squared, i = 1..60) with its minimum at step 30^2 = 900, so a chart
    /// that plotted against the record's index instead of its step would put the minimum elsewhere.
    /// </summary>
    public static RunMetrics Parabola(string name = "parabola", int minIndex = 30)
    {
        var lines = new List<string>();
        for (int i = 1; i <= 60; i++)
        {
            int step = i * i;
            lines.Add(Train(step, 3 + Math.Pow((i - minIndex) / 10.0, 2), tokens: step * 1000L));
        }
        lines.Add(Eval(0, 9));
        lines.Add(Eval(3600, 8));
        return RunMetrics.Parse(name, lines);
    }
}
