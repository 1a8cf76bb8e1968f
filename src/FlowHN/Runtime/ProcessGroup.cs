namespace FlowHN.Runtime;

/// <summary>How the process was launched: its rank among <see cref="Size"/> processes and its index on this machine.</summary>
public sealed record LaunchInfo(int Rank, int Size, int LocalRank, string Launcher);

/// <summary>
/// The processes of a data-parallel run, from MPI: one process per device, launched by <c>mpirun</c> or
/// <c>srun</c>. Collectives are MPI's (summed in place, blocking); the gradient all-reduce, the loss and evaluation
/// reductions and the checks of a resume go through here. A process that was not launched by MPI gets no group
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
        mpi.Init();
        var group = new ProcessGroup(mpi, mpi.Rank(), mpi.Size(), launch.LocalRank);
        if (group.Rank != launch.Rank && launch.Launcher == "Open MPI")
            throw new InvalidOperationException($"MPI says rank {group.Rank}, the environment {launch.Rank}.");
        return group;
    }

    /// <summary>Sums <paramref name="values"/> over all ranks, in place (every rank gets the same sums).</summary>
    public unsafe void AllReduceSum(Span<float> values)
    {
        fixed (float* p = values)
            for (long done = 0; done < values.Length; done += int.MaxValue)
                mpi.AllreduceSum((IntPtr)(p + done), (int)Math.Min(int.MaxValue, values.Length - done), mpi.Float);
    }

    /// <inheritdoc cref="AllReduceSum(Span{float})"/>
    public unsafe void AllReduceSum(Span<double> values)
    {
        fixed (double* p = values)
            mpi.AllreduceSum((IntPtr)p, values.Length, mpi.Double);
    }

    /// <summary>Copies <paramref name="data"/> from <paramref name="root"/> to every rank.</summary>
    public unsafe void Broadcast(Span<byte> data, int root = 0)
    {
        fixed (byte* p = data)
            mpi.Bcast((IntPtr)p, data.Length, mpi.Byte, root);
    }

    /// <summary>The same value on every rank: rank <paramref name="root"/>'s.</summary>
    public double Broadcast(double value, int root = 0)
    {
        Span<double> one = [value];
        Broadcast(System.Runtime.InteropServices.MemoryMarshal.AsBytes(one), root);
        return one[0];
    }

    public void Barrier() => mpi.Barrier();

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
