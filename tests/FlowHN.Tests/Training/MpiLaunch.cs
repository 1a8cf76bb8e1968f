using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace FlowHN.Tests.Training;

/// <summary>Starting the real `flowhn` (alone or under mpirun) and reading its metrics: shared by the data-parallel tests.</summary>
internal static class MpiLaunch
{
    public static readonly string Executable = Path.Combine(AppContext.BaseDirectory, "flowhn");

    /// <summary>`flowhn train` of the tiny transformer on the sample data, logging every step.</summary>
    public static string[] Train(string run, string cache, int batch, params string[] more) =>
    [
        "train", "--device", "cpu", "--arch", "transformer", "--preset", "tiny", "--data", RepoPaths.Sample, "--cache", cache,
        "--out", run, "--batch", batch.ToString(), "--seq", "16", "--eval-batches", "2", "--log-every", "1", "--lr", "3e-3", .. more,
    ];

    /// <summary>mpirun arguments that start <paramref name="ranks"/> copies of flowhn with <paramref name="args"/>.</summary>
    public static string[] Mpi(int ranks, string[] args) =>
        ["--allow-run-as-root", "--oversubscribe", "-np", ranks.ToString(), Executable, .. args];

    public sealed record Result(int ExitCode, string Output, double Seconds);

    /// <summary>Runs a process to its end (failing the test after the timeout), stdout and stderr together.</summary>
    public static Result Run(string file, string[] args, int timeoutSeconds = 600, Action<Process, StringBuilder>? whileRunning = null)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        var output = new StringBuilder();
        using var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        var clock = Stopwatch.StartNew();
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        whileRunning?.Invoke(process, output);
        if (!process.WaitForExit(timeoutSeconds * 1000))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{file} still running after {timeoutSeconds} s: {output}");
        }
        process.WaitForExit();
        lock (output) return new Result(process.ExitCode, output.ToString(), clock.Elapsed.TotalSeconds);
    }

    /// <summary>The (step, loss, gradient norm) of every train line of a run's metrics.jsonl.</summary>
    public static List<(int Step, double Loss, double GradNorm)> TrainLines(string run) =>
        File.ReadLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.GetProperty("type").GetString() == "train")
            .Select(e => (e.GetProperty("step").GetInt32(), e.GetProperty("loss").GetDouble(), e.GetProperty("grad_norm").GetDouble()))
            .ToList();
}
