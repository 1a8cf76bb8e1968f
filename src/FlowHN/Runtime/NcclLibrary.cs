using System.Runtime.InteropServices;

namespace FlowHN.Runtime;

/// <summary>Where to look for NCCL; <see cref="FromEnvironment"/> reads the process's, tests build fake trees.</summary>
/// <param name="ExplicitPath">FLOWHN_NCCL: when set, the only file tried.</param>
/// <param name="PathDirectories">The PATH's folders, searched for python3 (PyTorch's wheels bring nvidia/nccl/lib).</param>
/// <param name="CudaHome">CUDA_HOME (or CUDA_PATH).</param>
/// <param name="Home">HOME, for Python's per-user site-packages.</param>
/// <param name="Root">Prefix of the fixed system folders (/usr/local/cuda*); "/" except in tests.</param>
public sealed record NcclSearch(string? ExplicitPath, IReadOnlyList<string> PathDirectories, string? CudaHome, string? Home,
    string Root = "/")
{
    public const string Variable = "FLOWHN_NCCL";

    public static NcclSearch FromEnvironment()
    {
        var cublas = CublasSearch.FromEnvironment();
        string? path = Environment.GetEnvironmentVariable(Variable);
        return new NcclSearch(string.IsNullOrWhiteSpace(path) ? null : path, cublas.PathDirectories, cublas.CudaHome, cublas.Home);
    }
}

/// <summary>The NCCL that was loaded (or why none was): the file, its version, the handle.</summary>
public sealed record NcclLoad(IntPtr Handle, string? Path, string? Version, string? Error)
{
    public bool Loaded => Handle != IntPtr.Zero;

    public string Describe() => Loaded ? $"{Path} (version {Version ?? "unknown"})" : $"not found: {Error}";
}

/// <summary>
/// Finds NCCL the way <see cref="CublasLibrary"/> finds cuBLAS: the loader's own search (LD_LIBRARY_PATH,
/// ld.so cache: Debian's and NVIDIA's libnccl2 packages), CUDA_HOME, /usr/local/cuda*/lib64, then the
/// <c>site-packages/nvidia/nccl/lib</c> of every Python on PATH (PyTorch's wheels), or FLOWHN_NCCL alone.
/// </summary>
public static class NcclLibrary
{
    public static readonly string[] FileNames = ["libnccl.so.2", "libnccl.so"];

    /// <summary>Every file to try, in order; folder candidates only when the file exists.</summary>
    public static IReadOnlyList<string> Candidates(NcclSearch search)
    {
        if (search.ExplicitPath is { } path) return [path];
        var found = new List<string>(FileNames);
        var folders = CublasLibrary.LibraryFolders(new CublasSearch(null, search.PathDirectories, search.CudaHome, search.Home, search.Root));
        foreach (string dir in folders.Distinct())
            foreach (string name in FileNames)
            {
                string file = System.IO.Path.Combine(dir, name);
                if (File.Exists(file) && !found.Contains(file)) found.Add(file);
            }
        return found;
    }

    /// <summary>Loads the first candidate that loads; the result says which file and version, or why none.</summary>
    public static NcclLoad Load(NcclSearch search)
    {
        if (search.ExplicitPath is { } explicitPath && !File.Exists(explicitPath))
            return new NcclLoad(IntPtr.Zero, null, null,
                $"{NcclSearch.Variable}={explicitPath} names a file that does not exist; point it at libnccl.so.2 or unset it");
        var failures = new List<string>();
        foreach (string candidate in Candidates(search))
        {
            if (NativeLibrary.TryLoad(candidate, out IntPtr handle)) return new NcclLoad(handle, candidate, VersionOf(handle), null);
            if (candidate.Contains('/')) failures.Add(candidate);
        }
        if (search.ExplicitPath is { } failed)
            return new NcclLoad(IntPtr.Zero, null, null, $"{NcclSearch.Variable}={failed} exists but does not load (a missing CUDA runtime library?)");
        string tried = failures.Count > 0 ? $"; found but could not load {string.Join(", ", failures)}" : "";
        return new NcclLoad(IntPtr.Zero, null, null,
            "no libnccl.so.2 on the library path, in $CUDA_HOME, /usr/local/cuda*/lib64 or a Python's site-packages/nvidia/nccl/lib" +
            tried + $"; install libnccl2 or PyTorch, or set {NcclSearch.Variable}=/path/to/libnccl.so.2");
    }

    /// <summary>ncclGetVersion's code (major x 10000 + minor x 100 + patch since 2.9) as major.minor.patch.</summary>
    private static unsafe string? VersionOf(IntPtr library)
    {
        if (!NativeLibrary.TryGetExport(library, "ncclGetVersion", out IntPtr export)) return null;
        int code;
        if (((delegate* unmanaged<int*, int>)export)(&code) != 0) return null;
        return code >= 10000 ? $"{code / 10000}.{code / 100 % 100}.{code % 100}" : $"{code / 1000}.{code / 100 % 10}.{code % 100}";
    }
}

/// <summary>NCCL's opaque 128-byte id of a communicator: rank 0 makes it, MPI broadcasts it to the others.</summary>
[StructLayout(LayoutKind.Sequential, Size = 128)]
public unsafe struct NcclUniqueId
{
    public fixed byte Bytes[128];
}

/// <summary>
/// The NCCL calls a gradient all-reduce needs, bound from a loaded <c>libnccl.so.2</c> by function pointers
/// (the C ABI of nccl.h: ncclResult_t is an int, ncclComm_t and cudaStream_t pointers, the unique id passed by value).
/// </summary>
public sealed unsafe class Nccl
{
    public const int Float32 = 7; // ncclFloat32
    public const int Sum = 0;     // ncclSum

    private readonly delegate* unmanaged<NcclUniqueId*, int> getUniqueId;
    private readonly delegate* unmanaged<IntPtr*, int, NcclUniqueId, int, int> commInitRank;
    private readonly delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> allReduce;
    private readonly delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> reduceScatter;
    private readonly delegate* unmanaged<IntPtr, IntPtr, nuint, int, IntPtr, IntPtr, int> allGather;
    private readonly delegate* unmanaged<int> groupStart, groupEnd;
    private readonly delegate* unmanaged<IntPtr, int> commDestroy;
    private readonly delegate* unmanaged<int, IntPtr> getErrorString;

    public Nccl(NcclLoad load)
    {
        if (!load.Loaded) throw new UserException($"NCCL {load.Describe()}");
        IntPtr Export(string name) => NativeLibrary.TryGetExport(load.Handle, name, out IntPtr address)
            ? address
            : throw new UserException($"{load.Path} has no symbol {name}: is it NCCL 2?");
        getUniqueId = (delegate* unmanaged<NcclUniqueId*, int>)Export("ncclGetUniqueId");
        commInitRank = (delegate* unmanaged<IntPtr*, int, NcclUniqueId, int, int>)Export("ncclCommInitRank");
        allReduce = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Export("ncclAllReduce");
        reduceScatter = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Export("ncclReduceScatter");
        allGather = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, IntPtr, IntPtr, int>)Export("ncclAllGather");
        groupStart = (delegate* unmanaged<int>)Export("ncclGroupStart");
        groupEnd = (delegate* unmanaged<int>)Export("ncclGroupEnd");
        commDestroy = (delegate* unmanaged<IntPtr, int>)Export("ncclCommDestroy");
        getErrorString = (delegate* unmanaged<int, IntPtr>)Export("ncclGetErrorString");
    }

    public NcclUniqueId GetUniqueId()
    {
        NcclUniqueId id;
        Check(getUniqueId(&id), "ncclGetUniqueId");
        return id;
    }

    /// <summary>Joins the communicator <paramref name="id"/> names as <paramref name="rank"/> of <paramref name="ranks"/> (on the current CUDA context).</summary>
    public IntPtr CommInitRank(int ranks, NcclUniqueId id, int rank)
    {
        IntPtr comm;
        Check(commInitRank(&comm, ranks, id, rank), "ncclCommInitRank");
        return comm;
    }

    /// <summary>Enqueues an in-place float sum of <paramref name="count"/> elements on <paramref name="stream"/>.</summary>
    public void AllReduceSumInPlace(IntPtr data, long count, IntPtr comm, IntPtr stream) =>
        Check(allReduce(data, data, (nuint)count, Float32, Sum, comm, stream), "ncclAllReduce");

    // ZeRO-1's collectives. NCCL gives every rank the same count (ranks x count elements in all), so a sharded
    // buffer is padded to a multiple of the ranks; in place when receive = send + rank x count (reduce-scatter)
    // and send = receive + rank x count (all-gather). Bound for the NCCL path of --zero 1, which is not wired yet.

    /// <summary>Enqueues a float sum over the ranks of <paramref name="send"/> (ranks x <paramref name="count"/>
    /// elements) of which this rank receives block [rank x count, (rank + 1) x count) in <paramref name="receive"/>.</summary>
    public void ReduceScatterSum(IntPtr send, IntPtr receive, long count, IntPtr comm, IntPtr stream) =>
        Check(reduceScatter(send, receive, (nuint)count, Float32, Sum, comm, stream), "ncclReduceScatter");

    /// <summary>Enqueues an all-gather: every rank's <paramref name="count"/> floats at <paramref name="send"/>
    /// land in <paramref name="receive"/> at rank x count, on every rank.</summary>
    public void AllGather(IntPtr send, IntPtr receive, long count, IntPtr comm, IntPtr stream) =>
        Check(allGather(send, receive, (nuint)count, Float32, comm, stream), "ncclAllGather");

    /// <summary>Collectives between GroupStart and GroupEnd are launched together (one per bucket).</summary>
    public void GroupStart() => Check(groupStart(), "ncclGroupStart");

    public void GroupEnd() => Check(groupEnd(), "ncclGroupEnd");

    public void CommDestroy(IntPtr comm) => Check(commDestroy(comm), "ncclCommDestroy");

    private void Check(int result, string call)
    {
        if (result == 0) return;
        string? text = Marshal.PtrToStringAnsi(getErrorString(result));
        throw new InvalidOperationException($"{call} failed: {text ?? "NCCL error " + result}");
    }
}

/// <summary>
/// One NCCL communicator over the ranks of a <see cref="ProcessGroup"/>: rank 0 creates the unique id and MPI
/// broadcasts it, then every rank joins. Each process must have made its GPU's CUDA context current first.
/// </summary>
public sealed class NcclCommunicator : IDisposable
{
    private readonly Nccl nccl;
    private IntPtr comm;

    public NcclCommunicator(Nccl nccl, ProcessGroup group)
    {
        this.nccl = nccl;
        var id = group.IsRoot ? nccl.GetUniqueId() : default;
        group.Broadcast(MemoryMarshal.AsBytes(new Span<NcclUniqueId>(ref id)), what: "NCCL unique id");
        comm = nccl.CommInitRank(group.Size, id, group.Rank);
    }

    private NcclCommunicator(Nccl nccl, IntPtr comm)
    {
        this.nccl = nccl;
        this.comm = comm;
    }

    /// <summary>A communicator of this process alone (no MPI): checks NCCL on one GPU, where a sum is the identity.</summary>
    public static NcclCommunicator Alone(Nccl nccl) => new(nccl, nccl.CommInitRank(1, nccl.GetUniqueId(), 0));

    public IntPtr Handle => comm;

    /// <summary>Sums each (pointer, count) range over the ranks in place, launched as one NCCL group on <paramref name="stream"/>.</summary>
    public void AllReduceSum(IReadOnlyList<(IntPtr Data, long Count)> buckets, IntPtr stream)
    {
        nccl.GroupStart();
        foreach (var (data, count) in buckets) nccl.AllReduceSumInPlace(data, count, comm, stream);
        nccl.GroupEnd();
    }

    public void Dispose()
    {
        if (comm == IntPtr.Zero) return;
        nccl.CommDestroy(comm);
        comm = IntPtr.Zero;
    }
}
