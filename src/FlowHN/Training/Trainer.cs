using System.Diagnostics;
using FlowHN.Autograd;
using FlowHN.Data;
using FlowHN.Kernels;
using FlowHN.Models;
using FlowHN.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Training;

/// <summary>Outcome of a run: the evaluations in order and the final training loss.</summary>
public sealed record TrainResult(IReadOnlyList<(int Step, double Loss)> Evaluations, IReadOnlyList<double> StepLosses);

/// <summary>
/// The training loop: batches from the loader through the <see cref="TrainingStep"/> (forward, loss, backward,
/// clipped AdamW step), with evaluation, progress lines, metrics.jsonl and checkpoints. Losses and gradient
/// norms stay on the device and are read together on logging, evaluation and checkpoint steps (see
/// <see cref="DeviceStepLog"/>).
/// </summary>
public sealed class Trainer : IDisposable
{
    private readonly Session device;
    private readonly LanguageModel model;
    private readonly DataSource data;
    private readonly TrainOptions options;
    private readonly string runDir;
    private readonly TextWriter console;
    private readonly AdamW optimizer;
    private readonly TokenLoader loader;
    private readonly LearningRateSchedule schedule;
    private readonly CheckpointPromotion promotion;
    private readonly TrainingStep trainingStep;
    private BatchPrefetcher? batches; // while Run runs
    private readonly ProcessGroup? group; // data parallelism; null for a single process
    private int step;
    private int savedStep = -1;
    private long tokensSeen;
    private volatile bool stopRequested;

    /// <param name="group">the ranks of a data-parallel run (each takes its slice of every global batch; rank 0 writes
    /// the run folder), or null for a single process.</param>
    public Trainer(Session device, LanguageModel model, DataSource data, TrainOptions options, string runDir, TextWriter console,
        ProcessGroup? group = null, DataParallelBackend backend = DataParallelBackend.Auto, bool overlapReduction = true,
        long bucketBytes = GradientBuckets.DefaultBytes, int zero = 0)
    {
        options.Validate();
        if (zero is not (0 or 1)) throw new UserException($"--zero {zero} is not a stage; use 0 (off) or 1 (AdamW moments sharded over the ranks).");
        if (zero == 1 && group is null)
            throw new UserException("--zero 1 shards the AdamW moments over the ranks of a data-parallel run: launch it with mpirun or srun " +
                                    "(e.g. mpirun -np 2 flowhn train ... --zero 1), or drop --zero.");
        if (data.VocabSize > model.Config.VocabSize)
            throw new UserException($"The data uses {data.VocabSize} tokens but the model has a vocabulary of {model.Config.VocabSize}.");
        this.device = device;
        this.model = model;
        this.data = data;
        this.options = options;
        this.runDir = runDir;
        this.console = console;
        var store = model.Parameters().First().Store!;
        var shard = zero == 1 ? ParameterShard.Balanced(store.Length, group!.Size, group.Rank) : null;
        long before = device.Runtime.Allocator.BytesInUse;
        optimizer = new AdamW(device, model.Parameters().ToList(), options.Beta1, options.Beta2, 1e-8, options.WeightDecay, options.GradClip, shard);
        OptimizerStateBytes = device.Runtime.Allocator.BytesInUse - before;
        loader = new TokenLoader(data.Train, (ulong)options.Seed);
        schedule = new LearningRateSchedule(options.LearningRate, options.Steps, options.WarmupFraction, options.MinLrFraction);
        this.group = group;
        promotion = new CheckpointPromotion(runDir, writesFiles: IsRoot);
        trainingStep = new TrainingStep(device, model, optimizer, options.Accumulation);
        // Without MPI only an explicit --dp-backend nccl sums anything: over this process alone, to check NCCL on one GPU.
        if (shard is not null)
        {
            if (backend == DataParallelBackend.Nccl)
                throw new UserException("--zero 1 runs through MPI only so far (NCCL's reduce-scatter and all-gather are bound but not yet wired): " +
                                        "use --dp-backend mpi or auto with --zero 1, or drop --zero to sum over NCCL.");
            var sharded = new MpiZeroReducer(group!, device, store, shard);
            optimizer.Sync = sharded;
            trainingStep.Reducer = sharded;
        }
        else if (group is not null || backend == DataParallelBackend.Nccl)
        {
            var choice = ReducerChoice.Choose(backend, device.Runtime.IsCuda, () => NcclLibrary.Load(NcclSearch.FromEnvironment()));
            if (choice.Warning is { } warning && IsRoot) console.WriteLine(warning);
            trainingStep.Reducer = group is null
                ? choice.CreateAlone(device, store, overlapReduction, bucketBytes)
                : choice.Create(group, device, store, overlapReduction, bucketBytes);
        }
        if (IsRoot) Directory.CreateDirectory(runDir);
    }

    public AdamW Optimizer => optimizer;

    /// <summary>Device bytes the optimizer allocated on this rank (its moments and norm), from the allocator's count.</summary>
    public long OptimizerStateBytes { get; }

    /// <summary>Whether this process writes the run folder: always without data parallelism, else rank 0.</summary>
    private bool IsRoot => group?.IsRoot ?? true;

    private int Ranks => group?.Size ?? 1;

    /// <summary>Tokens of one optimizer step over all ranks.</summary>
    private long GlobalTokensPerStep => options.TokensPerStep * Ranks;

    /// <summary>Asks the loop to stop after the current step and save a checkpoint (e.g. on Ctrl+C).</summary>
    public void RequestStop() => stopRequested = true;

    /// <summary>Whether the last run ended early through <see cref="RequestStop"/>.</summary>
    public bool Interrupted { get; private set; }

    /// <summary>
    /// Prints what a step will hold on the device (measured by a shape-only step) and stops before the first step when it
    /// cannot fit, naming a batch that would.
    /// </summary>
    private void CheckMemory()
    {
        long tokens = (long)options.Batch * options.SeqLen;
        var memory = MemoryMeasure.Estimate(model.Config, options.Batch, options.SeqLen, MemoryMeasure.Like(device.Runtime), model.ActivationMemory);
        long available = device.Runtime.Allocator.LimitBytes > 0 ? device.Runtime.Allocator.LimitBytes : device.Runtime.MemoryBytes;
        // Weights, gradients and moments as allocated (exact sizes: cached blocks are not needed, they go back
        // to the driver when an allocation needs their room).
        long held = device.Runtime.Allocator.BytesInUse;
        double activations = memory.ActivationBytesPerToken * tokens;
        const double gib = 1 << 30;
        console.WriteLine($"memory: {held / gib:0.##} GiB of weights, gradients and AdamW moments + {activations / gib:0.##} GiB of " +
                          $"activations per batch of {options.Batch} (predicted) of {available / gib:0.##} GiB");
        if (held + activations <= available) return;
        // The suggestions leave half the activations' size for the allocator's rounding to its buckets (powers of
        // two below 4 MiB: 44% on average). The state is counted exactly, so nothing else pads the estimate.
        const double rounding = 1.5;
        long fits = (long)Math.Floor((available - held) / (rounding * memory.ActivationBytesPerToken * options.SeqLen));
        var recomputed = MemoryMeasure.Estimate(model.Config, options.Batch, options.SeqLen, MemoryMeasure.Like(device.Runtime), ActivationMemory.Recomputed);
        bool recomputeFits = !model.Recompute && held + rounding * recomputed.ActivationBytesPerToken * tokens <= available;
        throw new UserException($"A training step needs about {(held + activations) / gib:0.#} GiB but {device.Runtime.Name} has " +
                                $"{available / gib:0.#} GiB. " + (fits >= 1
                                    ? $"Use --batch {fits} or less (with --accum to keep the tokens per step)"
                                    : "Even one sequence does not fit: use a smaller --seq or preset") +
                                (recomputeFits ? $", or --recompute, which needs about {(held + recomputed.ActivationBytesPerToken * tokens) / gib:0.#} GiB." : "."));
    }

    /// <summary>
    /// Restores weights, optimizer moments, step and data position from the run's checkpoint (repairing a save a
    /// crash interrupted), and drops the metrics logged after the checkpoint's step.
    /// </summary>
    public void Resume()
    {
        if (IsRoot && Checkpoint.Recover(runDir) is { } recovered) console.WriteLine(recovered);
        group?.Barrier(); // the other ranks read the checkpoint once rank 0 has repaired it
        string dir = Checkpoint.PathIn(runDir);
        var state = Checkpoint.LoadState(dir);
        if (state.Tokenizer != data.TokenizerName)
            throw new UserException($"The checkpoint was trained with the {state.Tokenizer} tokenizer, the data uses {data.TokenizerName}.");
        if (state.ValidationNames is { } names && !names.Order().SequenceEqual(data.Meta.ValidationNames.Order()))
            throw new UserException($"The run validates on {string.Join(", ", names)}, but the data in {data.Directory} holds out " +
                                    $"{string.Join(", ", data.Meta.ValidationNames)}. Resume with the run's --data.");
        Checkpoint.LoadInto(dir, model, optimizer);
        step = state.Step;
        savedStep = step;
        tokensSeen = state.TokensSeen;
        loader.State = state.LoaderState;
        optimizer.StepCount = state.OptimizerSteps;
        promotion.LastGoodStep = step;
        if (group is not null) AgreeOnResume();
        console.WriteLine($"resumed from {dir} at step {step}");
        if (!IsRoot) return;
        int dropped = MetricsLog.Reconcile(runDir, step);
        if (dropped > 0)
            console.WriteLine($"metrics.jsonl: dropped {dropped} lines logged after step {step} (that work is redone now)");
    }

    /// <summary>
    /// Every rank must continue from the same checkpoint: the step, the optimizer's step count, the loader's
    /// position and a checksum of the weights are compared with rank 0's.
    /// </summary>
    private void AgreeOnResume()
    {
        var weights = new float[model.Parameters().First().Store!.Length];
        model.Parameters().First().Store!.Weights.CopyToCPU(device.Runtime.CurrentStream.Native, weights);
        device.Runtime.CurrentStream.Synchronize();
        double checksum = 0;
        for (int i = 0; i < weights.Length; i++) checksum += weights[i] * (double)(1 + i % 7);
        var mine = new[] { step, optimizer.StepCount, (double)(loader.State >> 32), loader.State & 0xffffffff, checksum };
        for (int i = 0; i < mine.Length; i++)
        {
            double root = group!.Broadcast(mine[i]);
            if (!root.Equals(mine[i]))
                throw new UserException($"Rank {group.Rank} resumed a different checkpoint than rank 0 (step {step}): every rank must see the " +
                                        $"same run folder ({runDir}), e.g. on a shared file system.");
        }
    }

    /// <summary>Trains to the configured step count, or only up to <paramref name="stopAfter"/> steps.</summary>
    public TrainResult Run(int? stopAfter = null)
    {
        var evaluations = new List<(int, double)>();
        var losses = new List<double>();
        double flopsPerStep = model.TrainingFlopsPerToken(options.SeqLen) * options.TokensPerStep; // per rank (MFU is per device)
        double peak = device.Runtime.Peak.For(device.Kernels.Gemm.UsesTf32);
        console.WriteLine($"model: {model.Config.Arch}/{model.Config.Preset}, {model.ParameterCount:N0} parameters, " +
                          $"{flopsPerStep / 1e9:0.###} GFLOP per step; MFU against {peak / 1e12:0.###} TFLOP/s ({device.Runtime.Peak.Source})");
        CheckMemory(); // before metrics.jsonl exists: the suggested command may then use the same --out
        console.WriteLine($"optimizer state: {OptimizerStateBytes:N0} bytes of AdamW moments on this rank" +
                          (optimizer.Shard is { } shard ? $" (ZeRO-1: {shard.Length:N0} of {shard.Total:N0} parameters' moments)" : ""));
        if (trainingStep.Reducer is not null)
            console.WriteLine($"data parallel: {Ranks} ranks x batch {options.Batch} x accum {options.Accumulation} = " +
                              $"{(long)Ranks * options.Batch * options.Accumulation} sequences per step; gradients: {trainingStep.Reducer!.Describe()}");
        using var metrics = IsRoot ? new MetricsLog(Path.Combine(runDir, MetricsLog.FileName), append: step > 0) : null;
        if (step == 0) evaluations.Add((0, Evaluate(metrics)));
        int lastStep = Math.Min(options.Steps, stopAfter ?? options.Steps);
        using var stepLog = new DeviceStepLog(device, Math.Min(options.LogEvery, Math.Max(1, lastStep - step)));
        // Batches are drawn one ahead on a worker thread; the checkpoint saves the position after the last one
        // taken, which is where the loader continues when the run ends (or resumes).
        batches = new BatchPrefetcher(device, options.Batch, options.SeqLen,
            FillRankSlice, loader.State);
        try
        {
            return Loop(evaluations, losses, metrics, stepLog, flopsPerStep, peak, lastStep);
        }
        finally
        {
            ulong position = batches.Position;
            batches.Dispose(); // joins the worker before the loader is touched here
            batches = null;
            loader.State = position;
        }
    }

    /// <summary>The prefetch worker's batch: this rank's slice of the global batch (the whole batch for one process).</summary>
    private ulong FillRankSlice(Span<int> inputs, Span<int> targets)
    {
        if (Ranks == 1) loader.Fill(inputs, targets, options.SeqLen);
        else
        {
            var slice = loader.NextBatch(options.Batch, options.SeqLen, group!.Rank, Ranks);
            slice.Inputs.CopyTo(inputs);
            slice.Targets.CopyTo(targets);
        }
        return loader.State;
    }

    private TrainResult Loop(List<(int, double)> evaluations, List<double> losses, MetricsLog? metrics, DeviceStepLog stepLog,
        double flopsPerStep, double peak, int lastStep)
    {
        var clock = Stopwatch.StartNew();
        var interval = Stopwatch.StartNew();
        int firstStep = step;
        var pending = new List<(int Step, double Lr, long Tokens)>();
        double? evalAtStep = null;
        while (step < lastStep)
        {
            step++;
            evalAtStep = null;
            double lr = schedule.At(step);
            FaultHooks.At("step-" + step);
            trainingStep.Run(batches!, lr, stepLog);
            if (FaultHooks.Nan("step-" + step)) stepLog.PoisonLast();
            tokensSeen += GlobalTokensPerStep;
            pending.Add((step, lr, tokensSeen));
            bool evaluate = step % options.EvalEvery == 0 || step == options.Steps;
            bool save = step % options.CheckpointEvery == 0 || step == options.Steps;
            // The device is read only here: before a line is printed, an evaluation or a checkpoint (one download of
            // every step's loss and gradient norm since the last read). A non-finite loss in any of those steps
            // stops the run before a checkpoint can hold its weights. The steps in between wait for nothing.
            bool stop = StopAgreed();
            if (step % options.LogEvery == 0 || step == lastStep || evaluate || save || stop || stepLog.IsFull)
            {
                ReadSteps(stepLog, pending, interval.Elapsed.TotalSeconds, flopsPerStep, peak, metrics, losses, clock, firstStep);
                interval.Restart();
            }
            if (stop)
            {
                Interrupted = true;
                break;
            }
            if (evaluate)
            {
                evalAtStep = Evaluate(metrics);
                evaluations.Add((step, evalAtStep.Value));
                // These weights give no finite loss: stop before they are saved as a checkpoint.
                if (!double.IsFinite(evalAtStep.Value))
                    throw promotion.NonFinite($"The validation loss became {evalAtStep.Value} at step {step}");
            }
            if (save) SaveCheckpoint();
        }
        FinishLastCheckpoint(evalAtStep);
        if (Interrupted)
            console.WriteLine($"stopped at step {step}; checkpoint saved in {Checkpoint.PathIn(runDir)} (continue with: flowhn train --resume --out {runDir})");
        return new TrainResult(evaluations, losses);
    }

    /// <summary>
    /// Whether to stop after this step. A signal reaches the ranks at different moments, so in a data-parallel run
    /// they agree first (one tiny all-reduce per step): all stop after the same step, or a rank that stopped alone
    /// would leave the others waiting in the next step's all-reduce.
    /// </summary>
    private bool StopAgreed()
    {
        if (group is null) return stopRequested;
        Span<double> flag = [stopRequested ? 1 : 0];
        group.AllReduceSum(flag, "whether to stop");
        return flag[0] > 0;
    }

    /// <summary>
    /// Reads the losses and gradient norms of the steps since the last read (one download), settles a pending
    /// checkpoint with the first of them (that step's forward ran on the saved weights), stops on a non-finite
    /// loss, and writes their metrics (time per step: the interval's mean) and the progress line.
    /// </summary>
    private void ReadSteps(DeviceStepLog stepLog, List<(int Step, double Lr, long Tokens)> pending, double seconds,
        double flopsPerStep, double peak, MetricsLog? metrics, List<double> losses, Stopwatch clock, int firstStep)
    {
        var read = stepLog.Read();
        // Each rank's loss is the mean over its slice; the step's loss is the mean over the ranks.
        var summed = read.Select(r => (double)r.Loss).ToArray();
        group?.AllReduceSum(summed, "step losses");
        double stepSeconds = seconds / pending.Count;
        double tokensPerSecond = GlobalTokensPerStep / stepSeconds;
        double mfu = flopsPerStep / stepSeconds / peak;
        for (int i = 0; i < pending.Count; i++)
        {
            var (at, lr, tokens) = pending[i];
            double loss = summed[i] / Ranks / options.Accumulation;
            promotion.Confirm(loss);
            if (!double.IsFinite(loss)) throw promotion.NonFinite($"The loss became {loss} at step {at}");
            losses.Add(loss);
            metrics?.Write(new { type = "train", step = at, loss, lr, grad_norm = read[i].GradNorm, tokens_per_s = tokensPerSecond,
                mfu, step_s = stepSeconds, tokens });
            if (at % options.LogEvery == 0 || at == options.Steps)
            {
                double eta = clock.Elapsed.TotalSeconds / (at - firstStep) * (options.Steps - at);
                console.WriteLine($"step {at,5}/{options.Steps} | loss {loss:0.0000} | lr {lr:0.00e+00} | " +
                                  $"{tokensPerSecond,8:N0} tok/s | MFU {mfu * 100:0.00}% | ETA {TimeSpan.FromSeconds(eta):m\\:ss}");
            }
        }
        pending.Clear();
    }

    /// <summary>
    /// The run's last weights are saved (also when it stops early) and promoted once a loss computed from them
    /// is finite: the evaluation of this step when there was one, else one validation batch.
    /// </summary>
    private void FinishLastCheckpoint(double? evalAtStep)
    {
        if (step > savedStep) SaveCheckpoint();
        if (!promotion.HasPending) return;
        double loss = evalAtStep ?? Evaluation.ValidationLoss(device, model, data.Validation, options.Batch, options.SeqLen, 1, group);
        promotion.Confirm(loss);
        if (!double.IsFinite(loss)) throw promotion.NonFinite($"The weights after step {step} give a loss of {loss}");
    }

    /// <summary>Mean validation loss over the fixed evaluation batches (no gradients).</summary>
    public double Evaluate(MetricsLog? metrics = null)
    {
        double loss = Evaluation.ValidationLoss(device, model, data.Validation, options.Batch, options.SeqLen, options.EvalBatches, group);
        if (FaultHooks.Nan("eval-" + step)) loss = double.NaN;
        console.WriteLine($"eval  step {step,5} | val loss {loss:0.0000} | val ppl {Math.Exp(loss):0.00}");
        metrics?.Write(new { type = "eval", step, val_loss = loss, val_ppl = Math.Exp(loss) });
        return loss;
    }

    public void Dispose()
    {
        trainingStep.Reducer?.Dispose();
        optimizer.Dispose();
    }

    /// <summary>Writes checkpoint.next/; <see cref="CheckpointPromotion"/> makes it the checkpoint once its weights prove finite.</summary>
    private void SaveCheckpoint()
    {
        // ZeRO-1: every rank sends its shard's moments to rank 0, which writes the single-process format.
        var gathered = trainingStep.Reducer is MpiZeroReducer sharded ? sharded.GatherMoments(optimizer) : null;
        if (!IsRoot)
        {
            // Rank 0 writes; the others keep the same bookkeeping so every rank takes the same collective steps.
            promotion.Saved(step);
            savedStep = step;
            return;
        }
        FaultHooks.At("before-save");
        Checkpoint.SaveNext(runDir, model, optimizer,
            new TrainState(step, batches?.Position ?? loader.State, optimizer.StepCount, tokensSeen, data.TokenizerName, options, data.Meta.ValidationNames),
            gathered);
        FaultHooks.At("after-save");
        promotion.Saved(step);
        savedStep = step;
    }
}
