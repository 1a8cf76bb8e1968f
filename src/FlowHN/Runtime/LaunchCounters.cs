namespace FlowHN.Runtime;

/// <summary>
/// Counts what is put on the device: kernel launches, and model FLOPs by the conventions of FlopModel (matrix
/// products as launched, less the columns of vocabulary padding; attention, the selective scan and the conv as
/// their forward cost, and twice that for a backward). A model's FLOPs per token are these counts over one
/// forward and backward on a shape-only device (ModelMeasure), which counts without launching.
/// </summary>
internal sealed class LaunchCounters
{
    public long Launches { get; private set; }
    public double MatmulFlops { get; private set; }
    public double AttentionFlops { get; private set; }
    public double ScanFlops { get; private set; }
    public double ConvFlops { get; private set; }
    /// <summary>
    /// Matrix-product FLOPs spent on the LM head's vocabulary padding columns: issued (they are in
    /// <see cref="MatmulFlops"/>) but not model FLOPs, since MFU counts the model's real work.
    /// </summary>
    public double PaddingFlops { get; private set; }
    /// <summary>
    /// Matrix-product FLOPs of the gemm attention path: issued (they are in <see cref="MatmulFlops"/>, masked
    /// scores included) but attention's model FLOPs are its visible pairs (<see cref="AttentionFlops"/>), the same
    /// for both paths, so MFU does not depend on the path.
    /// </summary>
    public double AttentionMatmulFlops { get; private set; }
    public double ModelFlops => MatmulFlops - PaddingFlops - AttentionMatmulFlops + AttentionFlops + ScanFlops + ConvFlops;
    /// <summary>Host-to-device copies and their bytes.</summary>
    public long Uploads { get; private set; }
    public long UploadBytes { get; private set; }
    /// <summary>Device-to-host copies: each one makes the host wait for the device.</summary>
    public long Downloads { get; private set; }
    public long Transfers => Uploads + Downloads;

    /// <summary>
    /// Times the host waited for a stream, or would on a GPU: stream and device synchronisations, downloads,
    /// and uploads from ordinary (pageable) host arrays, which ILGPU finishes before it returns. Counted the same
    /// way on every device, so a CPU test shows which steps make a GPU wait for the host.
    /// </summary>
    public long HostSyncs { get; private set; }

    /// <summary>
    /// Times the host waited before writing a page-locked staging buffer again because the copy from it had not
    /// finished (<see cref="PinnedHostBuffer.WaitUntilCopied"/>): the host was a step ahead and the device busy
    /// with queued work, so no idle device time. Always 0 on the CPU accelerator, whose copies finish at once.
    /// </summary>
    public long StagingWaits { get; private set; }

    internal void HostSync() => HostSyncs++;

    internal void StagingWait() => StagingWaits++;

    /// <summary>An asynchronous upload from page-locked memory: queued on a stream, no host wait.</summary>
    internal void PinnedUpload(long bytes)
    {
        Uploads++;
        UploadBytes += bytes;
    }

    internal void Kernel() => Launches++;

    /// <summary>An upload from a pageable host array (the copy finishes before the call returns).</summary>
    internal void Upload(long bytes)
    {
        Uploads++;
        UploadBytes += bytes;
        HostSyncs++;
    }

    internal void Download() => Downloads++; // its wait is counted by the stream's synchronisation

    internal void Matmul(long m, long n, long k, long batch)
    {
        Launches++;
        MatmulFlops += 2.0 * m * n * k * batch;
    }

    /// <summary>The share of a launched product that only computes padding: <paramref name="n"/> of its columns.</summary>
    internal void PaddingMatmul(long m, long n, long k) => PaddingFlops += 2.0 * m * n * k;

    internal void Attention(double flops) => AttentionFlops += flops;

    /// <summary>The share of launched products that computed attention (see <see cref="AttentionMatmulFlops"/>).</summary>
    internal void AttentionMatmul(double flops) => AttentionMatmulFlops += flops;

    internal void Scan(double flops) => ScanFlops += flops;

    internal void Conv(double flops) => ConvFlops += flops;

    public void Reset()
    {
        Launches = Uploads = UploadBytes = Downloads = HostSyncs = StagingWaits = 0;
        MatmulFlops = PaddingFlops = AttentionMatmulFlops = AttentionFlops = ScanFlops = ConvFlops = 0;
    }
}
