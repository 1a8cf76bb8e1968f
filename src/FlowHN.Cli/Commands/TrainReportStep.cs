using FlowHN.Autograd;
using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Reports;
using FlowHN.Runtime;
using FlowHN.Training;

namespace FlowHN.Cli.Commands;

/// <summary>
/// Writes report.md and loss.png into the run folder when <c>flowhn train</c> ends, whether it finished, was
/// stopped or failed: from the run's metrics.jsonl and what the command knows (settings, data, device, memory).
/// </summary>
internal static class TrainReportStep
{
    public static void Write(CliConsole console, string runDir, Session device, DataSource data, LanguageModel model,
        TrainOptions options, bool interrupted, Exception? failure)
    {
        if (!File.Exists(Path.Combine(runDir, MetricsLog.FileName))) return; // stopped before training began (e.g. the memory check)
        const double mib = 1 << 20, gib = 1 << 30;
        var facts = new RunFacts
        {
            Outcome = failure is not null ? $"Stopped by an error: {failure.Message}"
                : interrupted ? $"Stopped on request before step {options.Steps}; continue with `flowhn train --resume --out {runDir}`."
                : $"Finished: trained to step {options.Steps}.",
            Device = $"{device.Runtime.Describe()}; matrix products: {device.MatmulBackend}; attention: {device.AttentionPath}; MFU against {device.Runtime.Peak}.",
            Data = $"{data.Directory} ({data.TokenizerName} tokenizer, vocabulary {data.VocabSize}): {data.Train.Length:N0} training and " +
                   $"{data.Validation.Length:N0} validation tokens.",
            Memory = $"Peak {device.Runtime.Allocator.PeakBytesInUse / mib:0.0} MiB in use and {device.Runtime.Allocator.BytesReserved / mib:0.0} MiB reserved " +
                     $"by the caching allocator (this process) of {device.Runtime.MemoryBytes / gib:0.##} GiB.",
            Model = [("Parameters", model.ParameterCount.ToString("N0")), .. RunFacts.Rows(model.Config)],
            Training = RunFacts.Rows(options),
        };
        try
        {
            console.Out.WriteLine($"report: {RunReport.Write(runDir, facts)}");
        }
        catch (Exception e) // the run itself is saved: a report that cannot be written must not hide how training ended
        {
            console.Error.WriteLine($"warning: no report written to {runDir} ({e.GetType().Name}: {e.Message})");
        }
    }
}
