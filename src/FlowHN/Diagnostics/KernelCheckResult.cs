namespace FlowHN.Diagnostics;

/// <summary>One kernel compared with its float64 host reference.</summary>
public sealed record KernelCheckResult(string Name, double RelativeError, double Tolerance, string? Failure = null)
{
    public bool Passed => Failure is null && RelativeError < Tolerance && double.IsFinite(RelativeError);
}
