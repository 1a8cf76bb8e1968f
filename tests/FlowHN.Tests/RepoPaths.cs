namespace FlowHN.Tests;

/// <summary>Finds files of the repository (tests run from bin/).</summary>
public static class RepoPaths
{
    public static string Root
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "FlowHN.sln"))) dir = dir.Parent;
            return dir?.FullName ?? throw new InvalidOperationException("FlowHN.sln not found above the test binaries.");
        }
    }

    public static string Sample => Path.Combine(Root, "data", "sample");
}
