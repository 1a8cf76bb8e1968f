using FlowHN.Cli;

namespace FlowHN.Tests.Cli;

public class CliTests
{
    private static (int Code, string Out, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = FlowHnCli.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public void HelpListsTheCommands()
    {
        var (code, output, _) = Run("--help");
        Assert.Equal(0, code);
        Assert.Contains("check", output);
        Assert.Contains("info", output);
    }

    [Fact]
    public void CheckOnTheCpuPrintsAPassingTable()
    {
        var (code, output, _) = Run("check", "--device", "cpu");
        Assert.Equal(0, code);
        Assert.Contains("gemm.nn", output);
        Assert.Contains("cross-entropy.backward", output);
        Assert.DoesNotContain("FAIL", output);
        Assert.Contains(" 0 failed", output);
    }

    [Fact]
    public void UnknownDeviceGivesOneClearError()
    {
        var (code, output, error) = Run("check", "--device", "tpu");
        Assert.Equal(2, code);
        Assert.Equal("error: Unknown device 'tpu'. Use one of: auto, cuda, cpu.", error.Trim());
        Assert.DoesNotContain("   at ", error + output); // no stack trace
    }

    [Fact]
    public void CheckFilterThatMatchesNothingIsAUserError()
    {
        var (code, _, error) = Run("check", "--device", "cpu", "--filter", "no-such-kernel");
        Assert.Equal(2, code);
        Assert.Contains("No kernel check matches", error);
    }

    [Fact]
    public void InfoNamesThePeakUsedForMfu()
    {
        var (code, output, _) = Run("info", "--device", "cpu", "--peak-tflops", "2.5");
        Assert.Equal(0, code);
        Assert.Contains("2.5 TFLOP/s", output);
        Assert.Contains("user override", output);
    }
}
