namespace FlowHN.Runtime;

/// <summary>Dense peak FLOP/s of a device, used as the denominator of MFU.</summary>
public sealed record PeakFlops(string Source, double Fp32, double Tf32)
{
    /// <summary>The peak for the precision the matrix products run in.</summary>
    public double For(bool tf32) => tf32 ? Tf32 : Fp32;

    private static readonly (string NamePart, double Fp32T, double Tf32T)[] Table =
    [
        // Dense (no sparsity) vendor figures in TFLOP/s; most specific names first.
        ("H100 PCIe", 51.2, 378.0),
        ("H100 NVL", 60.0, 417.5),
        ("H100", 66.9, 494.7),
        ("H200", 66.9, 494.7),
        ("GH200", 66.9, 494.7),
        ("B200", 80.0, 1100.0),
        ("A100", 19.5, 156.0),
        ("A10G", 31.2, 62.5),
        ("A10", 31.2, 62.5),
        ("L40S", 91.6, 183.0),
        ("L4", 30.3, 60.0),
        ("V100", 15.7, 15.7),
        ("RTX 4090", 82.6, 82.6),
        ("RTX 3090", 35.6, 35.6),
        ("T4", 8.1, 8.1),
    ];

    /// <summary>
    /// Looks the device name up in the table. Unknown devices (and the CPU accelerator) get an
    /// estimate from the hardware so MFU stays defined; the source says it is an estimate.
    /// </summary>
    public static PeakFlops Lookup(string deviceName, double estimatedFp32)
    {
        foreach (var (part, fp32, tf32) in Table)
            if (deviceName.Contains(part, StringComparison.OrdinalIgnoreCase))
                return new PeakFlops($"table: {part}", fp32 * 1e12, tf32 * 1e12);
        return new PeakFlops("estimate", estimatedFp32, estimatedFp32);
    }

    /// <summary>A user override in TFLOP/s (e.g. from <c>--peak-tflops</c>), used for both precisions.</summary>
    public static PeakFlops Override(double tflops) => new("user override", tflops * 1e12, tflops * 1e12);

    public override string ToString() =>
        $"fp32 {Fp32 / 1e12:0.###} TFLOP/s, tf32 {Tf32 / 1e12:0.###} TFLOP/s ({Source})";
}
