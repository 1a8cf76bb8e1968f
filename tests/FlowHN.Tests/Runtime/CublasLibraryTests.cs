using FlowHN.Cli;
using FlowHN.Runtime;
using static FlowHN.Tests.TempFolder;

namespace FlowHN.Tests.Runtime;

/// <summary>Where cuBLAS is looked for, on a fake directory tree, and what a wrong FLOWHN_CUBLAS says.</summary>
public class CublasLibraryTests
{
    [Fact]
    public void CandidatesFollowTheSearchOrderAndListOnlyFilesThatExist()
    {
        using var tree = new TempFolder();
        string root = tree.Path;
        // A venv's python3 with PyTorch's wheels, Debian's pip folder next to /usr/bin/python3, a user install.
        Touch(root, "venv", "bin", "python3");
        string venvWheel = Touch(root, "venv", "lib", "python3.11", "site-packages", "nvidia", "cublas", "lib", "libcublas.so.12");
        Touch(root, "venv", "lib", "python3.11", "site-packages", "nvidia", "cudnn", "lib", "libcudnn.so.9");
        Touch(root, "usr", "bin", "python3");
        string debianPip = Touch(root, "usr", "local", "lib", "python3.11", "dist-packages", "nvidia", "cublas", "lib", "libcublas.so.11");
        string userWheel = Touch(root, "home", ".local", "lib", "python3.10", "site-packages", "nvidia", "cublas", "lib", "libcublas.so.12");
        Directory.CreateDirectory(Path.Combine(root, "bin-without-python"));
        // CUDA installs: the cuda symlink's folder first, then newest version first (12.10 is newer than 12.4).
        string cudaLink = Touch(root, "usr", "local", "cuda", "lib64", "libcublas.so.12");
        string cuda124 = Touch(root, "usr", "local", "cuda-12.4", "lib64", "libcublas.so.12");
        string cuda1210 = Touch(root, "usr", "local", "cuda-12.10", "lib64", "libcublas.so.12");
        string cuda13 = Touch(root, "usr", "local", "cuda-12.10", "lib64", "libcublas.so.13");
        string home = Touch(root, "opt", "cuda-home", "lib64", "libcublas.so.11");

        var search = new CublasSearch(null,
            [Path.Combine(root, "bin-without-python"), Path.Combine(root, "venv", "bin"), Path.Combine(root, "usr", "bin")],
            Path.Combine(root, "opt", "cuda-home"), Path.Combine(root, "home"), root);
        var candidates = CublasLibrary.Candidates(search);

        Assert.Equal(CublasLibrary.FileNames, candidates.Take(CublasLibrary.FileNames.Length)); // the loader's own path first
        Assert.Equal([home, cudaLink, cuda1210, cuda13, cuda124, venvWheel, debianPip, userWheel],
            candidates.Skip(CublasLibrary.FileNames.Length));
    }

    [Fact]
    public void AnExplicitPathIsTheOnlyCandidate()
    {
        var search = new CublasSearch("/opt/x/libcublas.so.12", ["/usr/bin"], "/usr/local/cuda", null);
        Assert.Equal(["/opt/x/libcublas.so.12"], CublasLibrary.Candidates(search));
    }

    [Fact]
    public void AMissingExplicitFileSaysSoAndLoadsNothing()
    {
        var load = CublasLibrary.Load(new CublasSearch("/no/such/dir/libcublas.so.12", [], null, null));
        Assert.False(load.Loaded);
        Assert.Equal("not found: FLOWHN_CUBLAS=/no/such/dir/libcublas.so.12 names a file that does not exist; point it at " +
                     "libcublas.so.N or unset it", load.Describe());
    }

    [Fact]
    public void AnExplicitFileThatIsNoLibrarySaysItDoesNotLoad()
    {
        using var tree = new TempFolder();
        string fake = Touch(tree.Path, "libcublas.so.12");
        var load = CublasLibrary.Load(new CublasSearch(fake, [], null, null));
        Assert.False(load.Loaded);
        Assert.Contains("exists but does not load", load.Error);
    }

    [Fact]
    public void InfoNamesTheMissingFileFromTheEnvironment()
    {
        string? before = Environment.GetEnvironmentVariable(CublasSearch.Variable);
        Environment.SetEnvironmentVariable(CublasSearch.Variable, "/no/such/dir/libcublas.so.12");
        try
        {
            var output = new StringWriter();
            int code = FlowHnCli.Run(["info", "--device", "cpu"], output, new StringWriter());
            Assert.Equal(0, code);
            Assert.Contains("cuBLAS:       not found: FLOWHN_CUBLAS=/no/such/dir/libcublas.so.12 names a file that does not exist",
                output.ToString());
        }
        finally
        {
            Environment.SetEnvironmentVariable(CublasSearch.Variable, before);
        }
    }
}
