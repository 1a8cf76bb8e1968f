using System.CommandLine;
using FlowHN.Autograd;
using FlowHN.Diagnostics;
using FlowHN.Runtime;

namespace FlowHN.Cli.Commands;

/// <summary>
/// <c>flowhn ptx-report</c> (hidden; CI runs it): every kernel's PTX through <c>ptxas -v</c>, a table of registers,
/// shared and local memory per kernel, and exit code 1 on any spill or local memory above a kernel's budget.
/// </summary>
public static class PtxReportCommand
{
    public static Command Create(CliConsole console)
    {
        var output = new Option<string>("--out")
        {
            Description = "Markdown file the table is written to.",
            DefaultValueFactory = _ => Path.Combine("benchmarks", "results", "ptxas-sm90.md"),
        };
        var ptxas = new Option<string>("--ptxas") { Description = "The ptxas to run.", DefaultValueFactory = _ => "ptxas" };
        var arch = new Option<string>("--arch") { Description = "GPU architecture ptxas assembles for.", DefaultValueFactory = _ => "sm_90" };
        var ptxDir = new Option<string?>("--ptx-dir") { Description = "Folder each kernel's PTX is also written to (<entry>.ptx), to read the code." };
        var command = new Command("ptx-report",
            "Assemble every kernel's PTX with ptxas -v: registers, shared and local memory per kernel; fails on spills or " +
            "local memory over budget.") { Hidden = true };
        command.Options.Add(output);
        command.Options.Add(ptxas);
        command.Options.Add(arch);
        command.Options.Add(ptxDir);
        command.SetAction(r =>
        {
            string tool = r.GetValue(ptxas)!, architecture = r.GetValue(arch)!;
            var (code, versionText) = PtxasReport.Execute(tool, "--version");
            if (code != 0) throw new UserException($"{tool} --version failed: {versionText.Trim()}");
            var release = PtxasReport.ParseRelease(versionText);
            var isa = PtxasReport.InstructionSetFor(release);
            var started = DateTime.UtcNow;
            using var device = Session.Create(new DeviceOptions { Device = DeviceKind.Cpu });
            var kernels = KernelPtx.Compile(device.KernelMethods, instructionSet: isa);
            if (r.GetValue(ptxDir) is { } folder)
            {
                Directory.CreateDirectory(folder);
                foreach (var kernel in kernels) File.WriteAllText(Path.Combine(folder, kernel.EntryName + ".ptx"), kernel.Ptx);
            }
            var stats = PtxasReport.Run(kernels, tool, architecture);
            string header =
                $"# ptxas report: every kernel at {architecture}\n\n" +
                $"- date: {started:yyyy-MM-dd HH:mm} UTC\n" +
                $"- commit: {Commit()}\n" +
                $"- command: `flowhn ptx-report --arch {architecture} --out {r.GetValue(output)}` (CI: `.ci/run`)\n" +
                $"- ptxas: release {release}; PTX from ILGPU's backend with instruction set {isa}, optimisation O2\n" +
                "- local B is the per-thread stack frame (local memory, in DRAM behind the caches); static shared B excludes " +
                "the dynamic shared memory most kernels size at launch; budgets are in `src/FlowHN/Diagnostics/PtxasReport.cs`";
            string markdown = PtxasReport.Markdown(stats, header);
            string file = r.GetValue(output)!;
            if (Path.GetDirectoryName(Path.GetFullPath(file)) is { } dir) Directory.CreateDirectory(dir);
            File.WriteAllText(file, markdown);
            foreach (var s in stats.Where(s => !s.Passed))
                console.Error.WriteLine($"{s.Method}: {(s.Spills ? $"spills {s.SpillStoreBytes} B stored / {s.SpillLoadBytes} B loaded" : "")}" +
                                        $"{(s.OverBudget ? $" local memory {s.LocalBytes} B over its budget of {s.LocalBudgetBytes} B" : "")}");
            console.Out.WriteLine($"{stats.Count} kernels assembled by ptxas {release} for {architecture} in " +
                                  $"{(DateTime.UtcNow - started).TotalSeconds:0} s; at most {stats.Max(s => s.Registers)} registers; " +
                                  $"{stats.Count(s => !s.Passed)} failing; wrote {file}");
            return stats.All(s => s.Passed) ? 0 : 1;
        });
        return command;
    }

    /// <summary>The checkout's commit, when there is one (the report names what it measured).</summary>
    private static string Commit()
    {
        try
        {
            var (code, text) = PtxasReport.Execute("git", "describe --always --dirty");
            return code == 0 ? text.Trim() : "unknown";
        }
        catch (UserException)
        {
            return "unknown";
        }
    }
}
