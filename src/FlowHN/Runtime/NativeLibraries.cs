using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;

namespace FlowHN.Runtime;

/// <summary>
/// Finds the CUDA driver and cuBLAS under the names Linux machines actually ship.
/// ILGPU asks for <c>libcuda.so</c>, which often exists only as <c>libcuda.so.1</c> (no developer symlink);
/// cuBLAS carries its major version in the file name. The handler runs only after the default lookup failed.
/// </summary>
public static class NativeLibraries
{
    private static int registered;

    /// <summary>
    /// cuBLAS file names tried in order: 12 first, because it runs on every driver from r525 while 13 needs r580, and
    /// the first library that loads is the one used even if its handle then cannot be created.
    /// </summary>
    public static readonly string[] CublasCandidates =
        ["libcublas.so.12", "libcublas.so.13", "libcublas.so.11", "libcublas.so.10", "libcublas.so"];

    public static void Register()
    {
        if (Interlocked.Exchange(ref registered, 1) == 1) return;
        AssemblyLoadContext.Default.ResolvingUnmanagedDll += Resolve;
    }

    private static IntPtr Resolve(Assembly assembly, string name)
    {
        string lower = name.ToLowerInvariant();
        if (lower.Contains("cublas")) return TryLoadFirst(CublasCandidates);
        if (lower is "cuda" or "nvcuda" or "libcuda" or "libcuda.so") return TryLoadFirst(["libcuda.so.1", "libcuda.so"]);
        return IntPtr.Zero;
    }

    /// <summary>Loads the first library that exists; returns zero when none does.</summary>
    public static IntPtr TryLoadFirst(IEnumerable<string> names)
    {
        foreach (string candidate in names)
            if (NativeLibrary.TryLoad(candidate, out IntPtr handle)) return handle;
        return IntPtr.Zero;
    }
}
