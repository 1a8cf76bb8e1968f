using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using FlowHN.Runtime;
using ILGPU.Runtime.Cuda;

namespace FlowHN.Diagnostics;

/// <summary>What <c>ptxas -v</c> says about one kernel: registers, static shared memory, local memory and spills.</summary>
public sealed record PtxasKernelStats(string Method, string EntryName, int Registers, int SharedBytes, int LocalBytes,
    int SpillStoreBytes, int SpillLoadBytes, int LocalBudgetBytes)
{
    public bool Spills => SpillStoreBytes > 0 || SpillLoadBytes > 0;
    public bool OverBudget => LocalBytes > LocalBudgetBytes;
    public bool Passed => !Spills && !OverBudget;
}

/// <summary>
/// The ptxas gate: every kernel's PTX assembled for a real GPU without one, failing on any register spill or on
/// per-thread local memory above the kernel's budget. Local memory lives in DRAM (cached): a per-thread array
/// that lands there turns a memory-bound kernel into a much slower one, and nothing else would notice.
/// </summary>
public static partial class PtxasReport
{
    /// <summary>
    /// Local memory each kernel may use per thread, in bytes; every kernel not named here may use none. None is
    /// named today: the scan's GPU kernels (lanes over states) keep each state in a register and a chunk's
    /// recomputed states in shared memory, so they use no local memory either (the per-thread arrays of the
    /// per-channel scan, 256 B forward and 4,800 B backward, belong to the CPU accelerator's kernels only).
    /// </summary>
    public static readonly IReadOnlyDictionary<string, int> LocalBudgets = new Dictionary<string, int>();

    public static int BudgetFor(string methodName) => LocalBudgets.GetValueOrDefault(methodName, 0);

    /// <summary>
    /// The PTX ISA a ptxas release accepts (CUDA 11.M: 7.M; 12.0-12.5: 8.M; 12.6: 8.5; 12.8: 8.7; later: 8.8, the
    /// newest ILGPU emits), so the report works with whatever toolkit the machine has.
    /// </summary>
    public static CudaInstructionSet InstructionSetFor(Version ptxasRelease)
    {
        (int major, int minor) = ptxasRelease switch
        {
            { Major: 11 } v => (7, Math.Min(v.Minor, 8)),
            { Major: 12, Minor: <= 5 } v => (8, v.Minor),
            { Major: 12, Minor: 6 } => (8, 5),
            { Major: 12, Minor: 7 or 8 } => (8, 7),
            { Major: >= 12 } => (8, 8),
            _ => throw new UserException($"ptxas {ptxasRelease} is too old: the report needs CUDA 11 or newer."),
        };
        return new CudaInstructionSet(major, minor);
    }

    /// <summary>"Cuda compilation tools, release 11.8, V11.8.89" -> 11.8.</summary>
    public static Version ParseRelease(string versionOutput) =>
        ReleasePattern().Match(versionOutput) is { Success: true } m
            ? new Version(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture))
            : throw new UserException($"Could not read the ptxas release from: {versionOutput.Trim()}");

    /// <summary>Reads <c>ptxas -v</c>'s lines for one entry function.</summary>
    public static PtxasKernelStats ParseVerbose(string method, string entryName, string output)
    {
        int Find(Regex pattern) => pattern.Match(output) is { Success: true } m ? int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
        if (!output.Contains($"'{entryName}'", StringComparison.Ordinal))
            throw new FormatException($"ptxas said nothing about {entryName}: {output.Trim()}");
        // Local memory is the stack frame (CUDA 11+) or "lmem" (older releases): whichever is reported.
        int local = Math.Max(Find(StackPattern()), Find(LmemPattern()));
        string methodName = method[(method.LastIndexOf('.') + 1)..];
        return new PtxasKernelStats(method, entryName, Find(RegistersPattern()), Find(SmemPattern()), local,
            Find(SpillStorePattern()), Find(SpillLoadPattern()), BudgetFor(methodName));
    }

    /// <summary>Runs ptxas on every kernel's PTX; throws a user error when ptxas cannot be run.</summary>
    public static IReadOnlyList<PtxasKernelStats> Run(IEnumerable<KernelPtxEntry> kernels, string ptxas, string architecture)
    {
        string dir = Path.Combine(Path.GetTempPath(), "flowhn-ptxas-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var stats = new List<PtxasKernelStats>();
            foreach (var kernel in kernels)
            {
                string file = Path.Combine(dir, kernel.EntryName + ".ptx");
                File.WriteAllText(file, kernel.Ptx);
                var (code, output) = Execute(ptxas, $"-arch={architecture} -v -o \"{file}.cubin\" \"{file}\"");
                if (code != 0) throw new UserException($"ptxas rejected {kernel.Method} ({kernel.EntryName}): {output.Trim()}");
                stats.Add(ParseVerbose(kernel.Method, kernel.EntryName, output));
            }
            return stats;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Runs a program and returns its exit code with stdout and stderr together.</summary>
    public static (int Code, string Output) Execute(string program, string arguments)
    {
        var start = new ProcessStartInfo(program, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new UserException($"Could not start {program}.");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new UserException($"Could not run {program} ({e.Message}). Install the CUDA toolkit (Debian: nvidia-cuda-toolkit) " +
                                    "or pass --ptxas /path/to/ptxas.");
        }
        using (process)
        {
            var stderr = process.StandardError.ReadToEndAsync();
            string stdout = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, stdout + stderr.Result);
        }
    }

    /// <summary>The table committed to benchmarks/results/, with how it was made.</summary>
    public static string Markdown(IReadOnlyList<PtxasKernelStats> stats, string header)
    {
        var sb = new StringBuilder(header.TrimEnd()).Append("\n\n");
        sb.Append("| kernel | entry | registers | static shared B | local B | local budget B | spill stores B | spill loads B | result |\n");
        sb.Append("|---|---|---:|---:|---:|---:|---:|---:|---|\n");
        foreach (var s in stats.OrderBy(s => s.Method, StringComparer.Ordinal))
            sb.Append(CultureInfo.InvariantCulture,
                $"| {s.Method} | {s.EntryName} | {s.Registers} | {s.SharedBytes} | {s.LocalBytes} | {s.LocalBudgetBytes} | " +
                $"{s.SpillStoreBytes} | {s.SpillLoadBytes} | {(s.Passed ? "ok" : s.Spills ? "SPILLS" : "OVER BUDGET")} |\n");
        sb.Append(CultureInfo.InvariantCulture,
            $"\n{stats.Count} kernels, {stats.Count(s => !s.Passed)} failing; at most {stats.Max(s => s.Registers)} registers, " +
            $"{stats.Count(s => s.LocalBytes > 0)} with local memory, {stats.Count(s => s.Spills)} spilling.\n");
        return sb.ToString();
    }

    [GeneratedRegex(@"release (\d+)\.(\d+)")]
    private static partial Regex ReleasePattern();

    [GeneratedRegex(@"Used (\d+) registers")]
    private static partial Regex RegistersPattern();

    [GeneratedRegex(@"(\d+) bytes smem")]
    private static partial Regex SmemPattern();

    [GeneratedRegex(@"(\d+) bytes lmem")]
    private static partial Regex LmemPattern();

    [GeneratedRegex(@"(\d+) bytes stack frame")]
    private static partial Regex StackPattern();

    [GeneratedRegex(@"(\d+) bytes spill stores")]
    private static partial Regex SpillStorePattern();

    [GeneratedRegex(@"(\d+) bytes spill loads")]
    private static partial Regex SpillLoadPattern();
}
