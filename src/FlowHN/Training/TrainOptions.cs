namespace FlowHN.Training;

/// <summary>Settings of one training run (the defaults follow the paper where it says something).</summary>
public sealed record TrainOptions
{
    public int Steps { get; init; } = 200;
    public int Batch { get; init; } = 8;
    public int SeqLen { get; init; } = 128;
    /// <summary>Micro-batches per optimizer step (gradient accumulation).</summary>
    public int Accumulation { get; init; } = 1;
    public double LearningRate { get; init; } = 3e-4;
    public double MinLrFraction { get; init; } = 0.1;
    public double WarmupFraction { get; init; } = 0.1;
    public double WeightDecay { get; init; } = 0.1;
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.95;
    public double GradClip { get; init; } = 1.0;
    public int EvalEvery { get; init; } = 50;
    public int EvalBatches { get; init; } = 8;
    public int CheckpointEvery { get; init; } = 100;
    public int LogEvery { get; init; } = 10;
    public int Seed { get; init; } = 1;
    /// <summary>The --data the run was started with (kept in state.json so --resume uses the same data).</summary>
    public string? Data { get; init; }

    [System.Text.Json.Serialization.JsonIgnore] public int TokensPerStep => Batch * SeqLen * Accumulation;

    public void Validate()
    {
        if (Steps <= 0 || Batch <= 0 || SeqLen <= 0 || Accumulation <= 0)
            throw new Runtime.UserException("--steps, --batch, --seq and --accum must be positive.");
        if (!(LearningRate > 0) || !double.IsFinite(LearningRate)) throw new Runtime.UserException("--lr must be a positive number.");
        if (!(WarmupFraction is >= 0 and <= 1)) throw new Runtime.UserException("--warmup must be between 0 and 1.");
        if (!(MinLrFraction is >= 0 and <= 1)) throw new Runtime.UserException("--min-lr-fraction must be between 0 and 1.");
        if (!(WeightDecay is >= 0 and < 1)) throw new Runtime.UserException("--weight-decay must be at least 0 and below 1.");
        if (!(GradClip >= 0) || !double.IsFinite(GradClip)) throw new Runtime.UserException("--grad-clip must be 0 (off) or positive.");
        if (EvalEvery <= 0 || CheckpointEvery <= 0 || LogEvery <= 0 || EvalBatches <= 0)
            throw new Runtime.UserException("--eval-every, --eval-batches, --checkpoint-every and --log-every must be positive.");
    }
}
