using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;

namespace FlowHN.Runtime;

/// <summary>
/// Finds the CUDA driver and cuBLAS under the names Linux machines actually ship.
/// ILGPU asks for <c>libcuda.so</c>, which often exists only as <c>libcuda.so.1</c> (no developer symlink); that
/// handler runs only after the default lookup failed. cuBLAS ("cublas" in our P/Invoke declarations) is always
/// resolved by <see cref="CublasLibrary"/>, before the default lookup, so the run knows which file it uses.
/// </summary>
public static class NativeLibraries
{
    private static int registered;

    public static void Register()
    {
        if (Interlocked.Exchange(ref registered, 1) == 1) return;
        AssemblyLoadContext.Default.ResolvingUnmanagedDll += Resolve;
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, ResolveOwn);
    }

    private static IntPtr ResolveOwn(string name, Assembly assembly, DllImportSearchPath? searchPath) =>
        name.Contains("cublas", StringComparison.OrdinalIgnoreCase) ? CublasLibrary.Current.Handle : IntPtr.Zero;

    private static IntPtr Resolve(Assembly assembly, string name)
    {
        string lower = name.ToLowerInvariant();
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
