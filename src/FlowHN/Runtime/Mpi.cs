using System.Runtime.InteropServices;

namespace FlowHN.Runtime;

/// <summary>
/// A thin binding of the MPI C API as Open MPI's <c>libmpi.so.40</c> exports it: only the calls a data-parallel
/// run needs. Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM) are the addresses of exported globals, so
/// they are looked up in the loaded library rather than compiled in as constants. Nothing here loads until a
/// process group is opened, so a run that is not launched by MPI never touches the library.
/// </summary>
internal sealed unsafe class Mpi
{
    /// <summary>File names tried in order (Open MPI 4 and 5 keep the soname libmpi.so.40).</summary>
    public static readonly string[] FileNames = ["libmpi.so.40", "libmpi.so"];

    private const int ThreadSerialized = 2; // MPI_THREAD_SERIALIZED: calls may come from any one thread at a time
    private static readonly IntPtr InPlace = 1; // Open MPI's MPI_IN_PLACE

    private readonly delegate* unmanaged<int*, IntPtr, int, int*, int> initThread;
    private readonly delegate* unmanaged<int*, int> initialized, finalized;
    private readonly delegate* unmanaged<IntPtr, int*, int> commRank, commSize;
    private readonly delegate* unmanaged<IntPtr, IntPtr, int, IntPtr, IntPtr, IntPtr, IntPtr*, int> iallreduce;
    private readonly delegate* unmanaged<IntPtr, int, IntPtr, int, IntPtr, IntPtr*, int> ibcast;
    private readonly delegate* unmanaged<IntPtr, IntPtr, int*, IntPtr, IntPtr, IntPtr, IntPtr*, int> ireduceScatter;
    private readonly delegate* unmanaged<IntPtr, int, IntPtr, IntPtr, int*, int*, IntPtr, IntPtr, IntPtr*, int> iallgatherv;
    private readonly delegate* unmanaged<IntPtr, int, IntPtr, IntPtr, int*, int*, IntPtr, int, IntPtr, IntPtr*, int> igatherv;
    private readonly delegate* unmanaged<IntPtr, IntPtr*, int> ibarrier;
    private readonly delegate* unmanaged<IntPtr*, int*, IntPtr, int> test;
    private readonly delegate* unmanaged<IntPtr, int, int> abort;
    private readonly delegate* unmanaged<int> finalize;

    private Mpi(IntPtr library, string path)
    {
        Path = path;
        IntPtr Export(string name) => NativeLibrary.TryGetExport(library, name, out IntPtr address)
            ? address
            : throw new UserException($"{path} has no symbol {name}: FlowHN binds Open MPI's libmpi.so.40 (Debian: apt-get install openmpi-bin libopenmpi-dev).");
        initThread = (delegate* unmanaged<int*, IntPtr, int, int*, int>)Export("MPI_Init_thread");
        initialized = (delegate* unmanaged<int*, int>)Export("MPI_Initialized");
        finalized = (delegate* unmanaged<int*, int>)Export("MPI_Finalized");
        commRank = (delegate* unmanaged<IntPtr, int*, int>)Export("MPI_Comm_rank");
        commSize = (delegate* unmanaged<IntPtr, int*, int>)Export("MPI_Comm_size");
        iallreduce = (delegate* unmanaged<IntPtr, IntPtr, int, IntPtr, IntPtr, IntPtr, IntPtr*, int>)Export("MPI_Iallreduce");
        ibcast = (delegate* unmanaged<IntPtr, int, IntPtr, int, IntPtr, IntPtr*, int>)Export("MPI_Ibcast");
        ireduceScatter = (delegate* unmanaged<IntPtr, IntPtr, int*, IntPtr, IntPtr, IntPtr, IntPtr*, int>)Export("MPI_Ireduce_scatter");
        iallgatherv = (delegate* unmanaged<IntPtr, int, IntPtr, IntPtr, int*, int*, IntPtr, IntPtr, IntPtr*, int>)Export("MPI_Iallgatherv");
        igatherv = (delegate* unmanaged<IntPtr, int, IntPtr, IntPtr, int*, int*, IntPtr, int, IntPtr, IntPtr*, int>)Export("MPI_Igatherv");
        ibarrier = (delegate* unmanaged<IntPtr, IntPtr*, int>)Export("MPI_Ibarrier");
        test = (delegate* unmanaged<IntPtr*, int*, IntPtr, int>)Export("MPI_Test");
        abort = (delegate* unmanaged<IntPtr, int, int>)Export("MPI_Abort");
        finalize = (delegate* unmanaged<int>)Export("MPI_Finalize");
        CommWorld = Export("ompi_mpi_comm_world");
        Float = Export("ompi_mpi_float");
        Double = Export("ompi_mpi_double");
        Byte = Export("ompi_mpi_byte");
        Sum = Export("ompi_mpi_op_sum");
    }

    public string Path { get; }
    public IntPtr CommWorld { get; }
    public IntPtr Float { get; }
    public IntPtr Double { get; }
    public IntPtr Byte { get; }
    public IntPtr Sum { get; }

    /// <summary>Loads libmpi (with its symbols global, as Open MPI's plugins need) or says plainly why it cannot.</summary>
    public static Mpi Load()
    {
        var failures = new List<string>();
        foreach (string name in FileNames)
        {
            // Open MPI's components (mca_*.so) resolve symbols of libmpi itself, which .NET's loader (RTLD_LOCAL)
            // would hide from them: load it RTLD_GLOBAL through dlopen first.
            IntPtr handle = DlOpenGlobal(name);
            if (handle == IntPtr.Zero && !NativeLibrary.TryLoad(name, out handle)) { failures.Add(name); continue; }
            return new Mpi(handle, name);
        }
        throw new UserException($"This process was launched by MPI but no MPI library loads (tried {string.Join(", ", failures)}). " +
                                "Install Open MPI (Debian: apt-get install openmpi-bin libopenmpi-dev) or put libmpi.so.40 on LD_LIBRARY_PATH.");
    }

    private static IntPtr DlOpenGlobal(string name)
    {
        const int now = 2, global = 0x100; // RTLD_NOW | RTLD_GLOBAL
        if (!NativeLibrary.TryLoad("libc.so.6", out IntPtr libc) || !NativeLibrary.TryGetExport(libc, "dlopen", out IntPtr dlopen))
            return IntPtr.Zero;
        IntPtr file = Marshal.StringToHGlobalAnsi(name);
        try
        {
            return ((delegate* unmanaged<IntPtr, int, IntPtr>)dlopen)(file, now | global);
        }
        finally
        {
            Marshal.FreeHGlobal(file);
        }
    }

    /// <summary>Initialises MPI; whether calls may come from any thread, one at a time (MPI_THREAD_SERIALIZED or more).</summary>
    public bool Init()
    {
        int flag;
        Check(initialized(&flag), "MPI_Initialized");
        if (flag != 0) return false; // initialised elsewhere, at a level we do not know
        int provided;
        Check(initThread(null, IntPtr.Zero, ThreadSerialized, &provided), "MPI_Init_thread");
        return provided >= ThreadSerialized;
    }

    public int Rank()
    {
        int rank;
        Check(commRank(CommWorld, &rank), "MPI_Comm_rank");
        return rank;
    }

    public int Size()
    {
        int size;
        Check(commSize(CommWorld, &size), "MPI_Comm_size");
        return size;
    }

    // Collectives are nonblocking: each returns a request (Open MPI's MPI_Request is a pointer) that Test polls, so
    // a caller can stop waiting for a rank that never arrives.

    /// <summary>Starts an in-place sum over all ranks of <paramref name="count"/> values of <paramref name="type"/> at <paramref name="data"/>.</summary>
    public IntPtr IallreduceSum(IntPtr data, int count, IntPtr type)
    {
        IntPtr request;
        Check(iallreduce(InPlace, data, count, type, Sum, CommWorld, &request), "MPI_Iallreduce");
        return request;
    }

    public IntPtr Ibcast(IntPtr data, int count, IntPtr type, int root)
    {
        IntPtr request;
        Check(ibcast(data, count, type, root, CommWorld, &request), "MPI_Ibcast");
        return request;
    }

    // The count and displacement arrays are read until the request completes: callers keep them pinned until then.

    /// <summary>Starts a sum over all ranks of <paramref name="send"/> (the whole buffer) of which this rank receives its
    /// block (<paramref name="counts"/>[rank] values, the blocks in rank order) in <paramref name="receive"/>.</summary>
    public IntPtr IreduceScatterSum(IntPtr send, IntPtr receive, int* counts, IntPtr type)
    {
        IntPtr request;
        Check(ireduceScatter(send, receive, counts, type, Sum, CommWorld, &request), "MPI_Ireduce_scatter");
        return request;
    }

    /// <summary>Starts an in-place all-gather: every rank's block of <paramref name="data"/> (at its displacement) goes to every rank.</summary>
    public IntPtr IallgathervInPlace(IntPtr data, int* counts, int* displacements, IntPtr type)
    {
        IntPtr request;
        Check(iallgatherv(InPlace, 0, type, data, counts, displacements, type, CommWorld, &request), "MPI_Iallgatherv");
        return request;
    }

    /// <summary>Starts a gather of every rank's <paramref name="count"/> values at <paramref name="send"/> into <paramref name="receive"/> on <paramref name="root"/>.</summary>
    public IntPtr Igatherv(IntPtr send, int count, IntPtr receive, int* counts, int* displacements, IntPtr type, int root)
    {
        IntPtr request;
        Check(igatherv(send, count, type, receive, counts, displacements, type, root, CommWorld, &request), "MPI_Igatherv");
        return request;
    }

    public IntPtr Ibarrier()
    {
        IntPtr request;
        Check(ibarrier(CommWorld, &request), "MPI_Ibarrier");
        return request;
    }

    /// <summary>Whether <paramref name="request"/> is complete (MPI then frees it and sets it to MPI_REQUEST_NULL).</summary>
    public bool Test(ref IntPtr request)
    {
        int flag;
        fixed (IntPtr* r = &request)
            Check(test(r, &flag, IntPtr.Zero), "MPI_Test"); // status: MPI_STATUS_IGNORE (null in Open MPI)
        return flag != 0;
    }

    public void Abort(int code) => abort(CommWorld, code);

    public void End()
    {
        int flag;
        if (finalized(&flag) == 0 && flag == 0) finalize();
    }

    private static void Check(int code, string call)
    {
        // With MPI's default error handler a failing call ends the job; this is the case of a handler that returns.
        if (code != 0) throw new InvalidOperationException($"{call} failed with MPI error code {code}.");
    }
}
