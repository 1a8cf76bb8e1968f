using System.Runtime.InteropServices;

namespace FlowHN.Runtime;

/// <summary>Where to look for cuBLAS; <see cref="FromEnvironment"/> reads the process's, tests build fake ones.</summary>
/// <param name="ExplicitPath">FLOWHN_CUBLAS: when set, the only file tried.</param>
/// <param name="PathDirectories">The PATH's folders, searched for python3 (its site-packages hold PyTorch's wheels).</param>
/// <param name="CudaHome">CUDA_HOME (or CUDA_PATH).</param>
/// <param name="Home">HOME, for Python's per-user site-packages.</param>
/// <param name="Root">Prefix of the fixed system folders (/usr/local/cuda*); "/" except in tests.</param>
public sealed record CublasSearch(string? ExplicitPath, IReadOnlyList<string> PathDirectories, string? CudaHome, string? Home,
    string Root = "/")
{
    public const string Variable = "FLOWHN_CUBLAS";

    public static CublasSearch FromEnvironment() => new(
        NonEmpty(Environment.GetEnvironmentVariable(Variable)),
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries),
        NonEmpty(Environment.GetEnvironmentVariable("CUDA_HOME")) ?? NonEmpty(Environment.GetEnvironmentVariable("CUDA_PATH")),
        NonEmpty(Environment.GetEnvironmentVariable("HOME")));

    private static string? NonEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s;
}

/// <summary>The cuBLAS that was loaded (or why none was): the file, its version, the handle for P/Invoke.</summary>
public sealed record CublasLoad(IntPtr Handle, string? Path, string? Version, string? Error)
{
    public bool Loaded => Handle != IntPtr.Zero;

    public string Describe() => Loaded ? $"{Path} (version {Version ?? "unknown"})" : $"not found: {Error}";
}

/// <summary>
/// Finds cuBLAS where GPU machines keep it. Its file name carries the major version, and it is often not on the
/// loader's path: PyTorch's wheels bring it in <c>site-packages/nvidia/cublas/lib</c>, the CUDA toolkit in
/// <c>/usr/local/cuda*/lib64</c>. Loading it explicitly also tells us which file we got, so runs can say so.
/// </summary>
public static class CublasLibrary
{
    /// <summary>
    /// File names in order of preference: 12 first, because it runs on every driver from r525 while 13 needs
    /// r580, and the first library that loads is the one used even if its handle then cannot be created.
    /// </summary>
    public static readonly string[] FileNames =
        ["libcublas.so.12", "libcublas.so.13", "libcublas.so.11", "libcublas.so.10", "libcublas.so"];

    private static readonly Lazy<CublasLoad> current = new(() => Load(CublasSearch.FromEnvironment()));

    /// <summary>The process's cuBLAS, located and loaded on first use (what the matrix products call).</summary>
    public static CublasLoad Current => current.Value;

    /// <summary>
    /// Every file to try, in order: the explicit path alone if given; else the bare names (the loader's own search:
    /// LD_LIBRARY_PATH, the ld.so cache, /usr/lib/...), then CUDA_HOME, /usr/local/cuda*/lib64 (newest first), then
    /// the nvidia/*/lib folders of every Python on PATH. Folder candidates are listed only when the file exists.
    /// </summary>
    public static IReadOnlyList<string> Candidates(CublasSearch search)
    {
        if (search.ExplicitPath is { } path) return [path];
        var found = new List<string>(FileNames);
        foreach (string dir in LibraryFolders(search).Distinct())
            foreach (string name in FileNames)
            {
                string file = System.IO.Path.Combine(dir, name);
                if (File.Exists(file) && !found.Contains(file)) found.Add(file);
            }
        return found;
    }

    internal static IEnumerable<string> LibraryFolders(CublasSearch search)
    {
        if (search.CudaHome is { } home)
        {
            yield return System.IO.Path.Combine(home, "lib64");
            yield return System.IO.Path.Combine(home, "lib");
        }
        string usrLocal = System.IO.Path.Combine(search.Root, "usr", "local");
        if (Directory.Exists(usrLocal))
        {
            // "cuda" (the usual symlink) first, then versioned installs, newest first.
            var installs = Directory.GetDirectories(usrLocal, "cuda*")
                .OrderBy(d => System.IO.Path.GetFileName(d) == "cuda" ? 0 : 1)
                .ThenByDescending(d => CudaVersionKey(System.IO.Path.GetFileName(d)));
            foreach (string install in installs) yield return System.IO.Path.Combine(install, "lib64");
        }
        foreach (string packages in PythonPackageFolders(search))
        {
            string nvidia = System.IO.Path.Combine(packages, "nvidia");
            if (!Directory.Exists(nvidia)) continue;
            foreach (string wheel in Directory.GetDirectories(nvidia).Order(StringComparer.Ordinal))
                yield return System.IO.Path.Combine(wheel, "lib");
        }
    }

    /// <summary>Compares versions as numbers, so cuda-12.10 counts as newer than cuda-12.4.</summary>
    private static Version CudaVersionKey(string folder) =>
        Version.TryParse(folder.Replace("cuda-", "").Replace("cuda", ""), out var v) ? v : new Version(0, 0);

    /// <summary>
    /// site-packages and dist-packages next to each python3 on PATH: a python3 in P/bin has its packages in
    /// P/lib/python3.X (venvs, conda, /usr) or P/local/lib/python3.X (Debian's pip), plus the user's ~/.local.
    /// </summary>
    private static IEnumerable<string> PythonPackageFolders(CublasSearch search)
    {
        var prefixes = new List<string>();
        foreach (string dir in search.PathDirectories)
        {
            if (!File.Exists(System.IO.Path.Combine(dir, "python3"))) continue;
            string? prefix = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(dir).TrimEnd('/'));
            if (prefix is null) continue;
            prefixes.Add(System.IO.Path.Combine(prefix, "lib"));
            prefixes.Add(System.IO.Path.Combine(prefix, "local", "lib"));
        }
        if (search.Home is { } home) prefixes.Add(System.IO.Path.Combine(home, ".local", "lib"));
        foreach (string lib in prefixes.Distinct())
        {
            if (!Directory.Exists(lib)) continue;
            foreach (string python in Directory.GetDirectories(lib, "python3*").Order(StringComparer.Ordinal))
                foreach (string kind in new[] { "site-packages", "dist-packages" })
                    yield return System.IO.Path.Combine(python, kind);
        }
    }

    /// <summary>Loads the first candidate that loads; the result says which file and version, or why none.</summary>
    public static CublasLoad Load(CublasSearch search)
    {
        var candidates = Candidates(search);
        if (search.ExplicitPath is { } explicitPath && !File.Exists(explicitPath))
            return new CublasLoad(IntPtr.Zero, null, null,
                $"{CublasSearch.Variable}={explicitPath} names a file that does not exist; point it at libcublas.so.N or unset it");
        var failures = new List<string>();
        foreach (string candidate in candidates)
        {
            bool isFile = candidate.Contains('/');
            if (isFile) PreloadLt(candidate);
            if (NativeLibrary.TryLoad(candidate, out IntPtr handle))
                return new CublasLoad(handle, isFile ? candidate : LoadedFile(candidate) ?? candidate, VersionOf(handle), null);
            if (isFile) failures.Add(candidate);
        }
        if (search.ExplicitPath is { } failed)
            return new CublasLoad(IntPtr.Zero, null, null,
                $"{CublasSearch.Variable}={failed} exists but does not load (a missing dependency such as libcublasLt next to it?)");
        string tried = failures.Count > 0 ? $"; found but could not load {string.Join(", ", failures)}" : "";
        return new CublasLoad(IntPtr.Zero, null, null,
            "no libcublas.so.N on the library path, in $CUDA_HOME, /usr/local/cuda*/lib64 or a Python's site-packages/nvidia/cublas/lib" +
            tried + $"; set {CublasSearch.Variable}=/path/to/libcublas.so.N");
    }

    /// <summary>
    /// libcublas needs libcublasLt of the same version; PyTorch's wheels find it through an $ORIGIN run path, but
    /// loading it first by full path works for copies without one.
    /// </summary>
    private static void PreloadLt(string cublasFile)
    {
        string name = System.IO.Path.GetFileName(cublasFile);
        string lt = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(cublasFile) ?? ".", name.Replace("libcublas", "libcublasLt"));
        if (File.Exists(lt)) NativeLibrary.TryLoad(lt, out _);
    }

    /// <summary>The file a bare soname resolved to, from the process's memory map (Linux).</summary>
    private static string? LoadedFile(string soname)
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/maps"))
            {
                int slash = line.IndexOf('/');
                if (slash < 0) continue;
                string file = line[slash..];
                if (System.IO.Path.GetFileName(file).StartsWith("libcublas.so", StringComparison.Ordinal)) return file;
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return null;
    }

    /// <summary>major.minor.patch through cublasGetProperty, which needs no handle (so no GPU either).</summary>
    private static unsafe string? VersionOf(IntPtr library)
    {
        if (!NativeLibrary.TryGetExport(library, "cublasGetProperty", out IntPtr export)) return null;
        var getProperty = (delegate* unmanaged<int, int*, int>)export;
        int major, minor, patch;
        if (getProperty(0, &major) != 0 || getProperty(1, &minor) != 0 || getProperty(2, &patch) != 0) return null;
        return $"{major}.{minor}.{patch}";
    }
}
