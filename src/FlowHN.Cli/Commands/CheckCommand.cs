using System.CommandLine;
using FlowHN.Diagnostics;
using FlowHN.Runtime;

namespace FlowHN.Cli.Commands;

/// <summary>
/// <c>flowhn check</c>: every kernel against its float64 reference on the chosen device, as a table.
/// Exit code 0 only when every kernel passes.
/// </summary>
public static class CheckCommand
{
    public static Command Create(CliConsole console)
    {
        var deviceOptions = new DeviceOptionSet();
        var filter = new Option<string?>("--filter") { Description = "Only run checks whose name contains this text (e.g. gemm)." };
        var seed = new Option<int>("--seed") { Description = "Seed of the random inputs.", DefaultValueFactory = _ => 1234 };
        var command = new Command("check", "Run every kernel on random inputs against a float64 host reference and print a pass/fail table.");
        deviceOptions.AddTo(command);
        command.Options.Add(filter);
        command.Options.Add(seed);
        command.SetAction(result =>
        {
            using var device = DeviceOptionSet.Open(deviceOptions.Read(result), console);
            var o = console.Out;
            o.WriteLine($"device: {device.Runtime.Describe()}");
            o.WriteLine($"matmul: {device.MatmulBackend}");
            o.WriteLine($"attention: {device.AttentionPath}");
            string? only = result.GetValue(filter);
            var names = KernelChecks.Names.Where(n => only is null || n.Contains(only, StringComparison.OrdinalIgnoreCase)).ToList();
            bool streams = only is null || StreamPriorityCheck.Name.Contains(only, StringComparison.OrdinalIgnoreCase);
            if (names.Count == 0 && !streams)
                throw new UserException($"No kernel check matches '{only}'. Checks: {string.Join(", ", KernelChecks.Names.Append(StreamPriorityCheck.Name))}.");
            o.WriteLine();
            o.WriteLine($"{"kernel",-32} {"rel. error",12} {"tolerance",10}  result");
            int failed = 0, ran = 0;
            void Report(KernelCheckResult r)
            {
                ran++;
                if (!r.Passed) failed++;
                o.WriteLine($"{r.Name,-32} {r.RelativeError,12:0.00e+00} {r.Tolerance,10:0e+00}  {(r.Passed ? "PASS" : "FAIL")}" +
                            (r.Failure is null ? "" : $"  {r.Failure}"));
            }
            // First (it takes a moment, and a run cut short still has it): the branch streams' priorities as the
            // driver reports them, and a launch on the high-priority stream.
            if (streams)
            {
                if (StreamPriorityCheck.Run(device, result.GetValue(seed)) is { } r) Report(r);
                else o.WriteLine($"{StreamPriorityCheck.Name,-32} not applicable on the CPU accelerator (no stream priorities)");
            }
            foreach (var name in names) Report(KernelChecks.Run(device, name, result.GetValue(seed)));
            o.WriteLine();
            o.WriteLine($"{ran - failed} passed, {failed} failed");
            return failed == 0 ? 0 : 1;
        });
        return command;
    }
}
