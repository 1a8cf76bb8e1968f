using System.Diagnostics;

namespace FlowHN.Runtime;

/// <summary>How the process was launched: its rank among <see cref="Size"/> processes and its index on this machine.</summary>
public sealed record LaunchInfo(int Rank, int Size, int LocalRank, string Launcher);

/// <summary>
/// The processes of a data-parallel run, from MPI: one process per device, launched by <c>mpirun</c> or
/// <c>srun</c>. Collectives are MPI's (summed in place; nonblocking calls waited on up to
/// <see cref="CollectiveTimeout"/>); the gradient all-reduce, the loss and evaluation reductions and the checks of
/// a resume go through here. A process that was not launched by MPI gets no group
/// (<see cref="FromEnvironment"/> returns null) and never loads an MPI library.
/// </summary>
public sealed class ProcessGroup : IDisposable
{
    private readonly Mpi mpi;
    private bool finalized;

    private ProcessGroup(Mpi mpi, int rank, int size, int localRank)
    {
        this.mpi = mpi;
        Rank = rank;
        Size = size;
        LocalRank = localRank;
    }

    public int Rank { get; }
    public int Size { get; }
    /// <summary>Index among the ranks on this machine: the GPU this process uses.</summary>
    public int LocalRank { get; }
    /// <summary>Rank 0 writes checkpoints, metrics and progress.</summary>
    public bool IsRoot => Rank == 0;
    /// <summary>
    /// Whether a collective may be called from another thread than the one that opened the group, one call at a
    /// time (MPI gave MPI_THREAD_SERIALIZED): the gradient all-reduce overlaps the backward from a worker thread.
    /// </summary>
    public bool AnyThreadMayCall { get; private init; }

    /// <summary>The MPI library file that was loaded.</summary>
    public string Library => mpi.Path;

    /// <summary>
    /// Whether the environment says MPI launched this process: Open MPI's mpirun sets OMPI_COMM_WORLD_*, MPICH's
    /// and Slurm's PMI set PMI_*, PMIx launchers (srun --mpi=pmix) PMIX_RANK. Null when none is set.
    /// </summary>
    public static LaunchInfo? Detect(Func<string, string?> variable)
    {
        int? Number(params string[] names)
        {
            foreach (string name in names)
                if (int.TryParse(variable(name), out int value)) return value;
            return null;
        }
        string? launcher = variable("OMPI_COMM_WORLD_SIZE") is not null ? "Open MPI"
            : variable("PMI_SIZE") is not null ? "PMI"
            : variable("PMIX_RANK") is not null ? "PMIx" : null;
        if (launcher is null) return null;
        int rank = Number("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID") ?? 0;
        int size = Number("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS") ?? 1;
        int local = Number("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID") ?? rank;
        return new LaunchInfo(rank, size, local, launcher);
    }

    /// <summary>The process group when MPI launched this process (MPI is initialised here), else null.</summary>
    public static ProcessGroup? FromEnvironment()
    {
        if (Detect(Environment.GetEnvironmentVariable) is not { } launch) return null;
        var mpi = Mpi.Load();
        bool serialized = mpi.Init();
        var group = new ProcessGroup(mpi, mpi.Rank(), mpi.Size(), launch.LocalRank) { AnyThreadMayCall = serialized };
        if (group.Rank != launch.Rank && launch.Launcher == "Open MPI")
            throw new InvalidOperationException($"MPI says rank {group.Rank}, the environment {launch.Rank}.");
        return group;
    }

    /// <summary>The default of <see cref="CollectiveTimeout"/> (and of train's --collective-timeout).</summary>
    public static readonly TimeSpan DefaultCollectiveTimeout = TimeSpan.FromSeconds(600);

    /// <summary>
    /// How long a collective may wait for the other ranks before this rank gives up with an error (and the CLI
    /// ends the job): a rank that is alive but hung would otherwise hold every other rank forever. Null: no limit.
    /// </summary>
    public TimeSpan? CollectiveTimeout { get; set; } = DefaultCollectiveTimeout;

    /// <summary>Sums <paramref name="values"/> over all ranks, in place (every rank gets the same sums).</summary>
    /// <param name="what">what the sum is for, named in the timeout's error.</param>
    public unsafe void AllReduceSum(Span<float> values, string what = "all-reduce")
    {
        fixed (float* p = values)
            for (long done = 0; done < values.Length; done += int.MaxValue)
                Wait(mpi.IallreduceSum((IntPtr)(p + done), (int)Math.Min(int.MaxValue, values.Length - done), mpi.Float), "MPI_Iallreduce", what);
    }

    /// <inheritdoc cref="AllReduceSum(Span{float}, string)"/>
    public unsafe void AllReduceSum(Span<double> values, string what = "all-reduce")
    {
        fixed (double* p = values)
            Wait(mpi.IallreduceSum((IntPtr)p, values.Length, mpi.Double), "MPI_Iallreduce", what);
    }

    // The sharded collectives below (ZeRO-1) take each rank's block as counts and displacements in rank order; MPI
    // counts them in int, so a buffer they cover must be shorter than 2^31 elements.

    /// <summary>
    /// Sums <paramref name="all"/> over all ranks and leaves in <paramref name="mine"/> only this rank's block
    /// (<paramref name="counts"/>[Rank] values): MPI_Reduce_scatter.
    /// </summary>
    public unsafe void ReduceScatterSum(ReadOnlySpan<float> all, Span<float> mine, int[] counts, string what = "reduce-scatter")
    {
        if (mine.Length != counts[Rank]) throw new ArgumentException($"rank {Rank} receives {counts[Rank]} values, not {mine.Length}.");
        fixed (float* send = all)
        fixed (float* receive = mine)
        fixed (int* c = counts)
            Wait(mpi.IreduceScatterSum((IntPtr)send, (IntPtr)receive, c, mpi.Float), "MPI_Ireduce_scatter", what);
    }

    /// <summary>Every rank's block of <paramref name="all"/> (at its displacement) to every rank, in place: MPI_Allgatherv.</summary>
    public unsafe void AllGather(Span<float> all, int[] counts, int[] displacements, string what = "all-gather")
    {
        fixed (float* data = all)
        fixed (int* c = counts)
        fixed (int* d = displacements)
            Wait(mpi.IallgathervInPlace((IntPtr)data, c, d, mpi.Float), "MPI_Iallgatherv", what);
    }

    /// <summary>
    /// Every rank's <paramref name="mine"/> into <paramref name="all"/> on <paramref name="root"/> (at each rank's
    /// displacement; <paramref name="all"/> is not touched elsewhere): MPI_Gatherv.
    /// </summary>
    public unsafe void Gather(ReadOnlySpan<float> mine, Span<float> all, int[] counts, int[] displacements, int root = 0, string what = "gather")
    {
        fixed (float* send = mine)
        fixed (float* receive = all)
        fixed (int* c = counts)
        fixed (int* d = displacements)
            Wait(mpi.Igatherv((IntPtr)send, mine.Length, (IntPtr)receive, c, d, mpi.Float, root), "MPI_Igatherv", what);
    }

    /// <summary>Copies <paramref name="data"/> from <paramref name="root"/> to every rank.</summary>
    public unsafe void Broadcast(Span<byte> data, int root = 0, string what = "broadcast")
    {
        fixed (byte* p = data)
            Wait(mpi.Ibcast((IntPtr)p, data.Length, mpi.Byte, root), "MPI_Ibcast", what);
    }

    /// <summary>The same value on every rank: rank <paramref name="root"/>'s.</summary>
    public double Broadcast(double value, int root = 0)
    {
        Span<double> one = [value];
        Broadcast(System.Runtime.InteropServices.MemoryMarshal.AsBytes(one), root);
        return one[0];
    }

    /// <summary>Waits until every rank is here.</summary>
    /// <param name="untimed">no <see cref="CollectiveTimeout"/>: for waits as long as their work (rank 0 tokenizing the data).</param>
    public void Barrier(string what = "barrier", bool untimed = false) => Wait(mpi.Ibarrier(), "MPI_Ibarrier", what, untimed);

    /// <summary>
    /// Polls a nonblocking collective until it completes or <see cref="CollectiveTimeout"/> passes. Open MPI
    /// progresses a nonblocking collective inside MPI_Test, so the first millisecond spins; a longer wait means a
    /// rank is behind, and a millisecond's sleep between tests then costs nothing that matters.
    /// </summary>
    private void Wait(IntPtr request, string call, string what, bool untimed = false)
    {
        var timeout = untimed ? null : CollectiveTimeout;
        long start = Stopwatch.GetTimestamp();
        var spin = new SpinWait();
        while (!mpi.Test(ref request))
        {
            var waited = Stopwatch.GetElapsedTime(start);
            if (timeout is { } limit && waited > limit)
                throw new UserException($"{call} ({what}) on rank {Rank} of {Size} did not complete within {limit.TotalSeconds:0.###} s: " +
                                        "another rank is hung or far behind. Every rank of the job is ended; if a step legitimately takes " +
                                        "longer, raise --collective-timeout.", exitCode: CollectiveTimeoutExitCode);
            if (waited.TotalMilliseconds < 1) spin.SpinOnce(sleep1Threshold: -1);
            else Thread.Sleep(1);
        }
    }

    /// <summary>Exit code of a rank that gave up waiting in a collective.</summary>
    public const int CollectiveTimeoutExitCode = 4;

    /// <summary>Ends every rank of the job (a rank that fails alone would leave the others waiting in a collective).</summary>
    public void Abort(int exitCode)
    {
        Console.Out.Flush();
        Console.Error.Flush();
        mpi.Abort(exitCode);
    }

    public void Dispose()
    {
        if (finalized) return;
        finalized = true;
        mpi.End(); // MPI_Finalize
    }
}
