namespace FlowHN.Training;

/// <summary>
/// Linear warm-up over the first <c>WarmupFraction</c> of the steps, then a cosine decay from the peak to
/// <c>MinFraction</c> of it at the last step (the paper: cosine with 10% warm-up).
/// </summary>
public sealed record LearningRateSchedule(double Peak, int TotalSteps, double WarmupFraction = 0.1, double MinFraction = 0.1)
{
    public int WarmupSteps => (int)Math.Ceiling(TotalSteps * WarmupFraction);

    /// <summary>Learning rate of 1-based step <paramref name="step"/>.</summary>
    public double At(int step)
    {
        if (step <= WarmupSteps) return Peak * step / Math.Max(1, WarmupSteps);
        double progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
        double min = Peak * MinFraction;
        return min + 0.5 * (Peak - min) * (1 + Math.Cos(Math.PI * Math.Min(1, progress)));
    }
}
