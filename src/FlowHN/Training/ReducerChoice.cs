using FlowHN.Autograd;
using FlowHN.Runtime;

namespace FlowHN.Training;

/// <summary>Which library sums the gradients of a data-parallel run (<c>--dp-backend</c>).</summary>
public enum DataParallelBackend
{
    /// <summary>NCCL on CUDA when it loads; MPI otherwise (with a warning on CUDA).</summary>
    Auto,
    /// <summary>NCCL on the device's gradient buffer; an error where it cannot run.</summary>
    Nccl,
    /// <summary>MPI on a host copy of the gradients (the CPU accelerator's path; works on a GPU too, slower).</summary>
    Mpi,
}

/// <summary>The backend a run uses, the NCCL that was loaded for it, and a line to print when auto fell back.</summary>
public sealed record ReducerChoice(DataParallelBackend Backend, NcclLoad? Nccl, string? Warning)
{
    public static DataParallelBackend Parse(string word) => word switch
    {
        "auto" => DataParallelBackend.Auto,
        "nccl" => DataParallelBackend.Nccl,
        "mpi" => DataParallelBackend.Mpi,
        _ => throw new UserException($"--dp-backend {word} is not a backend; use auto, nccl or mpi."),
    };

    /// <summary>
    /// Decides the backend. NCCL sums CUDA device memory only, so it needs a CUDA device and a loadable
    /// libnccl.so.2 (<paramref name="loadNccl"/> is asked only on CUDA); forcing it elsewhere is an error that says
    /// what to do, and auto falls back to MPI, saying why when it happens on a GPU.
    /// </summary>
    public static ReducerChoice Choose(DataParallelBackend requested, bool isCuda, Func<NcclLoad> loadNccl)
    {
        if (requested == DataParallelBackend.Mpi) return new ReducerChoice(DataParallelBackend.Mpi, null, null);
        if (!isCuda)
            return requested == DataParallelBackend.Nccl
                ? throw new UserException("--dp-backend nccl needs --device cuda: NCCL sums GPU memory. On the CPU accelerator the " +
                                          "gradients are summed through MPI (--dp-backend auto or mpi).")
                : new ReducerChoice(DataParallelBackend.Mpi, null, null);
        var load = loadNccl();
        if (load.Loaded) return new ReducerChoice(DataParallelBackend.Nccl, load, null);
        return requested == DataParallelBackend.Nccl
            ? throw new UserException($"--dp-backend nccl: NCCL {load.Describe()}; or use --dp-backend mpi (slower: through host memory).")
            : new ReducerChoice(DataParallelBackend.Mpi, null,
                $"warning: NCCL {load.Describe()}. Gradients are summed through MPI in host memory instead (slower); " +
                "--dp-backend mpi silences this.");
    }

    /// <summary>The reducer for this choice over <paramref name="group"/>'s ranks (overlapping the backward or after it).</summary>
    public IGradientReducer Create(ProcessGroup group, Session device, ParameterStore store, bool overlap,
        long bucketBytes = GradientBuckets.DefaultBytes) => Backend switch
    {
        DataParallelBackend.Nccl => new NcclGradientReducer(device, store,
            new NcclCollective(new NcclCommunicator(new Runtime.Nccl(Nccl!), group), Nccl!), group.Size, overlap, bucketBytes),
        _ => new MpiGradientReducer(group, device, store, overlap, bucketBytes),
    };

    /// <summary>NCCL over this process alone (<c>--dp-backend nccl</c> without mpirun): checks the NCCL path on one GPU.</summary>
    public IGradientReducer CreateAlone(Session device, ParameterStore store, bool overlap, long bucketBytes = GradientBuckets.DefaultBytes) =>
        Backend == DataParallelBackend.Nccl
            ? new NcclGradientReducer(device, store, new NcclCollective(NcclCommunicator.Alone(new Runtime.Nccl(Nccl!)), Nccl!), 1, overlap, bucketBytes)
            : throw new InvalidOperationException("Only NCCL runs in a single process without MPI.");
}
