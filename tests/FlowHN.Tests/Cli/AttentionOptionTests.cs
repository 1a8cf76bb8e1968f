using FlowHN.Cli;

namespace FlowHN.Tests.Cli;

/// <summary>--attention: parsed like --gemm, reported beside the matmul backend.</summary>
public class AttentionOptionTests
{
    private static (int Code, string Out, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = FlowHnCli.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    [Theory]
    [InlineData("auto", "attention:    flash kernels")] // auto is gemm only on CUDA with cuBLAS
    [InlineData("flash", "attention:    flash kernels")]
    [InlineData("gemm", "attention:    gemm (query blocks of 64 rows, batched matrix products)")]
    public void InfoNamesTheAttentionPath(string path, string expected)
    {
        var (code, output, _) = Run("info", "--device", "cpu", "--attention", path);
        Assert.Equal(0, code);
        Assert.Contains(expected, output);
    }

    [Fact]
    public void UnknownAttentionPathGivesOneClearError()
    {
        var (code, output, error) = Run("info", "--device", "cpu", "--attention", "cudnn");
        Assert.Equal(2, code);
        Assert.Equal("error: Unknown attention path 'cudnn'. Use one of: auto, flash, gemm.", error.Trim());
        Assert.DoesNotContain("   at ", error + output);
    }
}
