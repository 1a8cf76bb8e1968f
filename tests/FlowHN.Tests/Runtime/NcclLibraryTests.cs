using FlowHN.Runtime;
using static FlowHN.Tests.TempFolder;

namespace FlowHN.Tests.Runtime;

/// <summary>Where NCCL is looked for, on a fake directory tree, and what a wrong FLOWHN_NCCL says.</summary>
public class NcclLibraryTests
{
    [Fact]
    public void CandidatesFollowTheSearchOrderAndListOnlyFilesThatExist()
    {
        using var tree = new TempFolder();
        string root = tree.Path;
        Touch(root, "venv", "bin", "python3");
        string wheel = Touch(root, "venv", "lib", "python3.12", "site-packages", "nvidia", "nccl", "lib", "libnccl.so.2");
        Touch(root, "venv", "lib", "python3.12", "site-packages", "nvidia", "cublas", "lib", "libcublas.so.12");
        string cuda = Touch(root, "usr", "local", "cuda-12.4", "lib64", "libnccl.so.2");
        string home = Touch(root, "opt", "cuda", "lib64", "libnccl.so");
        var search = new NcclSearch(null, [Path.Combine(root, "venv", "bin")], Path.Combine(root, "opt", "cuda"), null, root);

        var candidates = NcclLibrary.Candidates(search);

        // The loader's own search first (bare names), then CUDA_HOME, /usr/local/cuda*, then PyTorch's wheel.
        Assert.Equal(["libnccl.so.2", "libnccl.so", home, cuda, wheel], candidates);
    }

    [Fact]
    public void AnExplicitPathIsTheOnlyCandidateAndAMissingOneIsNamed()
    {
        var search = new NcclSearch("/nowhere/libnccl.so.2", [], null, null);
        Assert.Equal(["/nowhere/libnccl.so.2"], NcclLibrary.Candidates(search));
        var load = NcclLibrary.Load(search);
        Assert.False(load.Loaded);
        Assert.Contains("FLOWHN_NCCL=/nowhere/libnccl.so.2 names a file that does not exist", load.Error);
    }

    [Fact]
    public void AFileThatIsNotALibraryIsReportedAsNotLoading()
    {
        using var tree = new TempFolder();
        string fake = tree.Write(Path.Combine("lib", "libnccl.so.2"), "not an ELF file");
        var load = NcclLibrary.Load(new NcclSearch(fake, [], null, null));
        Assert.False(load.Loaded);
        Assert.Contains("exists but does not load", load.Error);
        var e = Assert.Throws<UserException>(() => new Nccl(load));
        Assert.Contains("NCCL not found", e.Message);
    }

    [Fact]
    public void WithoutNcclOnThisMachineTheErrorSaysWhereItLookedAndWhatToSet()
    {
        var load = NcclLibrary.Load(new NcclSearch(null, [], null, null, "/nonexistent-root"));
        if (load.Loaded) return; // a machine with NCCL installed: nothing to say
        Assert.Contains("site-packages/nvidia/nccl/lib", load.Error);
        Assert.Contains("FLOWHN_NCCL=", load.Error);
    }
}
