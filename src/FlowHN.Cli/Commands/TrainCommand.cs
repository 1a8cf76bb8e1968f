using System.CommandLine;
using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Training;

namespace FlowHN.Cli.Commands;

/// <summary><c>flowhn train</c>: trains a language model on prepared shards or a folder of text files.</summary>
public static class TrainCommand
{
    public static Command Create(CliConsole processConsole)
    {
        var d = new TrainOptions();
        var arch = CliOption.OneOf(CliOption.Create("--arch", "Architecture: " + string.Join(", ", ArchitectureRegistry.Names) + ".", "flowhn"),
            ArchitectureRegistry.Names);
        var preset = CliOption.OneOf(CliOption.Create("--preset", "Model size preset (see `flowhn models`).", "tiny"), Presets.Names);
        var data = CliOption.Create("--data", "Prepared shard folder (flowhn prepare) or a folder of .txt files (tokenized and cached).", "data/sample");
        var validation = new Option<string[]>("--val")
        {
            Description = "Documents (file names without .txt) held out for validation when --data is a text folder " +
                          "(default: " + string.Join(", ", CorpusPreparer.DefaultValidationBooks) + "); a prepared folder keeps its own split.",
            AllowMultipleArgumentsPerToken = true,
        };
        var tokenizer = CliOption.OneOf(CliOption.Create("--tokenizer", "gpt2 or bytes; auto = bytes for the tiny preset, gpt2 otherwise.", "auto"),
            ["auto", "gpt2", "bytes"]);
        var cache = CliOption.Create("--cache", "Where text folders are tokenized to.", Path.Combine("runs", "data-cache"));
        var output = CliOption.Create("--out", "Run folder for metrics.jsonl and the checkpoint (default: runs/ARCH-PRESET-TIME).", "");
        var steps = CliOption.Create("--steps", "Optimizer steps: the horizon of the learning-rate schedule.", d.Steps, CliOption.Positive, "a positive step count");
        var stopAfter = CliOption.Create("--stop-after", "End the run after this step (saving a checkpoint) without changing the schedule's horizon; " +
                                                         "--resume continues it (0 = run to --steps).", 0, CliOption.NonNegative, "0 or a positive step");
        var extend = new Option<bool>("--extend") { Description = "With --resume: accept a new --steps, which changes the learning-rate schedule from here on." };
        var batch = CliOption.Create("--batch", "Sequences per micro-batch.", d.Batch, CliOption.Positive, "a positive number of sequences");
        var seq = CliOption.Create("--seq", "Tokens per sequence.", d.SeqLen, v => v >= 2, "at least 2 tokens");
        var accum = CliOption.Create("--accum", "Micro-batches per optimizer step (gradient accumulation).", d.Accumulation, CliOption.Positive, "a positive count");
        var lr = CliOption.Create("--lr", "Peak learning rate.", d.LearningRate, CliOption.Positive, "a positive number");
        var minLr = CliOption.Create("--min-lr-fraction", "Final learning rate as a fraction of the peak (cosine decay).", d.MinLrFraction,
            CliOption.Fraction, "between 0 and 1");
        var warmup = CliOption.Create("--warmup", "Fraction of the steps spent warming up linearly.", d.WarmupFraction, CliOption.Fraction, "between 0 and 1");
        var decay = CliOption.Create("--weight-decay", "AdamW decoupled weight decay (not applied to norms and embeddings).", d.WeightDecay,
            v => CliOption.NonNegative(v) && v < 1, "at least 0 and below 1");
        var clip = CliOption.Create("--grad-clip", "Clip the global gradient norm to this (0 = off).", d.GradClip, CliOption.NonNegative, "0 (off) or positive");
        var evalEvery = CliOption.Create("--eval-every", "Evaluate on the validation data every N steps (and at the start and end).", d.EvalEvery,
            CliOption.Positive, "a positive step count");
        var evalBatches = CliOption.Create("--eval-batches", "Validation batches per evaluation.", d.EvalBatches, CliOption.Positive, "a positive count");
        var checkpointEvery = CliOption.Create("--checkpoint-every", "Save a checkpoint every N steps (and at the end).", d.CheckpointEvery,
            CliOption.Positive, "a positive step count");
        var logEvery = CliOption.Create("--log-every", "Print a progress line every N steps.", d.LogEvery, CliOption.Positive, "a positive step count");
        var seed = CliOption.Create("--seed", "Seed of initialisation and data order.", d.Seed);
        var split = CliOption.OneOf(CliOption.Create("--split", "FlowHN token split: none, ae (alternating halves), fa (FLOP-aware), fac (FLOP-aware circulating).", "fac"),
            SplitWords.StrategyWords);
        var splitContext = CliOption.OneOf(CliOption.Create("--split-context", "FlowHN: local (each branch sees only its tokens, as the paper's code) or prefix " +
                                                  "(attention keys cover all earlier tokens).", "prefix"), SplitWords.ContextWords);
        var splitRatio = CliOption.Parsed("--split-ratio", "FlowHN fa/fac attention share: flops (balance the FLOP model), time (balance branch " +
                                          "times measured on this device) or a number in (0, 1).", AttentionShare.Flops, AttentionShare.TryParse,
            AttentionShare.Words);
        var ssm = CliOption.OneOf(CliOption.Create("--ssm", "The SSM layers of flowhn, shm, jamba and hymba: mamba1 (the paper's) or mamba2 (SSD).", "mamba1"),
            SsmWords.All);
        var noConcurrency = new Option<bool>("--no-branch-concurrency")
        {
            Description = "FlowHN: run the two branches of a block one after the other instead of on two CUDA streams (ablation).",
        };
        var resume = new Option<bool>("--resume") { Description = "Continue the run in --out from its checkpoint, with the options it was started with." };
        var recompute = new Option<bool>("--recompute")
        {
            Description = "Activation checkpointing: keep only each layer's output in the forward and run the layer again in the " +
                          "backward (most activation memory saved for about a third more compute; same results).",
        };
        var dpBackend = new Option<string>("--dp-backend")
        {
            Description = "Data parallelism (under mpirun/srun): what sums the gradients. auto: NCCL on the GPUs' memory when " +
                          "--device cuda and libnccl.so.2 loads, else MPI (a warning on CUDA); nccl: NCCL or an error; mpi: MPI " +
                          "through host memory (the CPU accelerator's path).",
            DefaultValueFactory = _ => "auto",
        };
        var collectiveTimeout = new Option<double>("--collective-timeout")
        {
            Description = "Data parallelism: seconds a rank waits in a collective (gradient all-reduce, loss sums, barriers) for the " +
                          "others before it ends the whole job with an error naming the collective, so a hung rank cannot hold " +
                          "the job forever. Raise it if a checkpoint save or an evaluation legitimately takes longer; 0: wait forever.",
            DefaultValueFactory = _ => ProcessGroup.DefaultCollectiveTimeout.TotalSeconds,
        };
        var noOverlap = new Option<bool>("--no-dp-overlap")
        {
            Description = "Data parallelism: sum all gradient buckets after the backward instead of each one as soon as the backward " +
                          "has finished it (the ablation; the same results).",
        };
        var bucketMib = new Option<double>("--dp-bucket-mib")
        {
            Description = "Data parallelism: MiB of gradients per all-reduce (bucket). Smaller buckets start sooner in the backward; " +
                          "larger ones make fewer calls.",
            DefaultValueFactory = _ => GradientBuckets.DefaultBytes / (double)(1 << 20),
        };
        var zero = new Option<int>("--zero")
        {
            Description = "Data parallelism: 1 shards the AdamW moments over the ranks (ZeRO stage 1: gradients reduce-scattered, each " +
                          "rank updates its shard, weights all-gathered), dividing their memory by the number of ranks; through MPI " +
                          "only. 0: every rank keeps all moments. Checkpoints are the same either way.",
            DefaultValueFactory = _ => 0,
        };
        var deviceOptions = new DeviceOptionSet();

        var command = new Command("train", "Train a language model and report loss, tokens/s and MFU; writes metrics.jsonl and checkpoints.");
        foreach (var option in new Option[] { arch, preset, data, validation, tokenizer, cache, output, steps, stopAfter, extend, batch, seq, accum, lr,
                     minLr, warmup, decay, clip, evalEvery, evalBatches, checkpointEvery, logEvery, seed, split, splitContext, splitRatio,
                     ssm, noConcurrency, recompute, resume, dpBackend, collectiveTimeout, noOverlap, bucketMib, zero })
            command.Options.Add(option);
        deviceOptions.AddTo(command);
        command.SetAction(r =>
        {
            var backend = ReducerChoice.Parse(r.GetValue(dpBackend)!);
            double timeoutSeconds = r.GetValue(collectiveTimeout);
            if (!(timeoutSeconds >= 0) || !double.IsFinite(timeoutSeconds))
                throw new UserException($"--collective-timeout {timeoutSeconds} is not a number of seconds; use a positive number, or 0 for no limit.");
            double bucketSize = r.GetValue(bucketMib);
            if (!(bucketSize * (1 << 20) >= sizeof(float)) || !double.IsFinite(bucketSize))
                throw new UserException($"--dp-bucket-mib {bucketSize} is not a size; use a positive number of MiB (e.g. 25).");
            var group = DataParallel.Open();
            int zeroStage = r.GetValue(zero);
            if (zeroStage is not (0 or 1)) throw new UserException($"--zero {zeroStage} is not a stage; use 0 (off) or 1 (AdamW moments sharded over the ranks).");
            if (zeroStage == 1 && group is null)
                throw new UserException("--zero 1 shards the AdamW moments over the ranks of a data-parallel run: launch it with mpirun or srun " +
                                        "(e.g. mpirun -np 2 flowhn train ... --zero 1), or drop --zero.");
            if (zeroStage == 1 && backend == DataParallelBackend.Nccl)
                throw new UserException("--zero 1 runs through MPI only so far (NCCL's reduce-scatter and all-gather are bound but not yet wired): " +
                                        "use --dp-backend mpi or auto with --zero 1, or drop --zero to sum over NCCL.");
            var console = DataParallel.ConsoleFor(processConsole);
            if (group is not null) group.CollectiveTimeout = timeoutSeconds == 0 ? null : TimeSpan.FromSeconds(timeoutSeconds);
            bool root = group?.IsRoot ?? true;
            string archName = r.GetValue(arch)!, presetName = r.GetValue(preset)!;
            var architecture = ArchitectureRegistry.Get(archName);
            var presetNames = architecture.Presets.Select(p => p.Name).ToList();
            if (!presetNames.Contains(presetName))
                throw new UserException($"--preset {presetName} does not exist for --arch {archName}; use one of {string.Join(", ", presetNames)}.");
            string runDir = r.GetValue(output)!;
            bool resuming = r.GetValue(resume);
            if (runDir.Length == 0)
            {
                if (resuming) throw new UserException("--resume needs --out pointing at the run folder to continue.");
                runDir = Path.Combine("runs", $"{archName}-{presetName}-{DateTime.Now:yyyyMMdd-HHmmss}");
            }
            if (r.GetValue(extend) && !resuming) throw new UserException("--extend changes the horizon of a run being resumed; add --resume.");
            using var runLock = root ? RunLock.Acquire(runDir) : null; // rank 0 holds the run folder for all ranks
            CrashReport.RunFolder = runDir;
            if (runLock?.TookOverFrom is { } stale) console.Out.WriteLine(stale);
            var options = new TrainOptions
            {
                Steps = r.GetValue(steps), Batch = r.GetValue(batch), SeqLen = r.GetValue(seq), Accumulation = r.GetValue(accum),
                LearningRate = r.GetValue(lr), MinLrFraction = r.GetValue(minLr), WarmupFraction = r.GetValue(warmup),
                WeightDecay = r.GetValue(decay), GradClip = r.GetValue(clip), EvalEvery = r.GetValue(evalEvery),
                EvalBatches = r.GetValue(evalBatches), CheckpointEvery = r.GetValue(checkpointEvery), LogEvery = r.GetValue(logEvery),
                Seed = r.GetValue(seed), Data = r.GetValue(data)!,
            };
            var ssmKind = SsmWords.Parse(r.GetValue(ssm)!);
            if (ssmKind != SsmKind.Mamba1 && !architecture.ChoosesSsm)
                throw new UserException($"--ssm {r.GetValue(ssm)} does not apply to --arch {archName}; it chooses the SSM layers of " +
                                        string.Join(", ", ArchitectureRegistry.All.Where(a => a.ChoosesSsm).Select(a => a.Name)) + ".");
            string tokenizerName = r.GetValue(tokenizer)!;
            if (tokenizerName == "auto") tokenizerName = Presets.Find(presetName).Tokenizer;
            var routing = new SplitChoice(SplitWords.ParseStrategy(r.GetValue(split)!), SplitWords.ParseContext(r.GetValue(splitContext)!),
                r.GetValue(splitRatio)!, !r.GetValue(noConcurrency), ssmKind);
            ModelConfig? config = null;
            if (resuming)
            {
                if (root && Checkpoint.Recover(runDir) is { } recovered) console.Out.WriteLine(recovered);
                group?.Barrier(); // the others read the checkpoint once rank 0 has repaired it
                var state = Checkpoint.LoadState(Checkpoint.PathIn(runDir));
                config = Checkpoint.LoadConfig(Checkpoint.PathIn(runDir));
                var check = new ResumeOptions(r, runDir, state);
                check.Same(arch, config.Arch).Same(preset, config.Preset).Same(tokenizer, state.Tokenizer, v => v == "auto" || v == state.Tokenizer)
                    .Same(batch, state.Options.Batch).Same(seq, state.Options.SeqLen).Same(accum, state.Options.Accumulation)
                    .Same(lr, state.Options.LearningRate).Same(minLr, state.Options.MinLrFraction).Same(warmup, state.Options.WarmupFraction)
                    .Same(decay, state.Options.WeightDecay).Same(clip, state.Options.GradClip).Same(seed, state.Options.Seed)
                    .Same(ssm, SsmWords.Word(config.Ssm)).Same(split, SplitWords.Word(config.Split)).Same(splitContext, SplitWords.Word(config.SplitContext))
                    .Same(splitRatio, config.SplitRatio).Same(validation, state.ValidationNames, v => v is null || v.Length == 0 ||
                        state.ValidationNames is null || v.Order().SequenceEqual(state.ValidationNames.Order()));
                if (state.Options.Data is { } storedData) check.Same(data, storedData);
                check.Horizon(steps, r.GetValue(extend));
                check.ThrowIfAny();
                options = check.Merge(options, evalEvery, evalBatches, checkpointEvery, logEvery, console.Out);
                tokenizerName = state.Tokenizer;
            }
            else
            {
                if (root) MetricsLog.RequireFreshFolder(runDir);
            }
            int stopAt = r.GetValue(stopAfter);
            var device = deviceOptions.Read(r);
            if (group is not null)
            {
                if (r.GetValue(splitRatio) is { } share && share.Equals(AttentionShare.Time))
                    throw new UserException("--split-ratio time measures each device on its own, so ranks could disagree; run it in a single " +
                                            "process first and pass the share it prints (e.g. --split-ratio 0.59).");
                device = device with { CudaDevice = group.LocalRank };
            }
            return Train(console, group, device, architecture, presetName, routing, options.Data!, r.GetValue(validation), tokenizerName,
                r.GetValue(cache)!, runDir, options, config, r.GetValue(recompute), stopAt == 0 ? null : stopAt, backend, !r.GetValue(noOverlap),
                (long)(bucketSize * (1 << 20)), zeroStage);
        });
        return command;
    }

    private sealed record SplitChoice(SplitStrategy Strategy, SplitContext Context, AttentionShare Ratio, bool Concurrent, SsmKind Ssm);

    private static int Train(CliConsole console, ProcessGroup? group, DeviceOptions deviceOptions, Architecture arch, string preset, SplitChoice split, string dataPath,
        string[]? validation, string tokenizer, string cacheDir, string runDir, TrainOptions options, ModelConfig? resumedConfig, bool recompute,
        int? stopAfter, DataParallelBackend backend, bool overlapReduction, long bucketBytes, int zero)
    {
        options.Validate();
        bool resume = resumedConfig is not null;
        // Rank 0 prepares the token cache (when it is missing or stale) before the other ranks look at it.
        string[]? heldOut = validation is { Length: > 0 } ? validation : null;
        var data = group is null || group.IsRoot ? DataSource.Open(dataPath, tokenizer, cacheDir, heldOut) : null;
        group?.Barrier("waiting for rank 0's token cache", untimed: true); // tokenizing takes as long as the data is large
        data ??= DataSource.Open(dataPath, tokenizer, cacheDir, heldOut);
        foreach (var warning in data.Prepared?.Warnings ?? []) console.Out.WriteLine(warning);
        console.Out.WriteLine($"data: {data.Directory} ({data.TokenizerName}, {data.Train.Length:N0} train / {data.Validation.Length:N0} validation tokens)");
        var config = resumedConfig
            ?? arch.Config(preset, data.VocabSize) with { Split = split.Strategy, SplitContext = split.Context, SplitRatio = split.Ratio, Ssm = split.Ssm };
        if (config.Architecture.SplitsTokens)
            console.Out.WriteLine($"split: {SplitWords.Word(config.Split)}, context {SplitWords.Word(config.SplitContext)}, " +
                                  $"ratio {config.SplitRatio}");
        if (config.Architecture.ChoosesSsm) console.Out.WriteLine($"ssm layers: {SsmWords.Word(config.Ssm)}");
        using var device = DeviceOptionSet.Open(deviceOptions, console);
        console.Out.WriteLine($"device: {device.Runtime.Describe()}; matmul: {device.MatmulBackend}; attention: {device.AttentionPath}");
        var (resolved, samples) = SplitTimer.Resolve(device, config, options.Batch, options.SeqLen);
        if (samples.Count > 0)
        {
            foreach (var m in samples)
                console.Out.WriteLine($"  timing: attention {m.AttentionTokens,5} tokens {m.AttentionMs,8:0.00} ms | " +
                                      $"SSM {options.SeqLen - m.AttentionTokens,5} tokens {m.SsmMs,8:0.00} ms");
            console.Out.WriteLine($"--split-ratio time: measured times balance at an attention share of {resolved.SplitRatio}");
        }
        config = resolved;
        using var model = LanguageModel.Create(device, config, options.Seed);
        model.Recompute = recompute;
        if (recompute) console.Out.WriteLine("activation checkpointing: on (layers run again in the backward)");
        if (model is FlowHNLM flowhn)
        {
            flowhn.BranchConcurrency = device.Runtime.IsCuda && split.Concurrent;
            if (config.Split is SplitStrategy.FlopAware or SplitStrategy.FlopAwareCirculating)
                console.Out.WriteLine($"FLOP-aware split at L={options.SeqLen}: {FlowHNLM.Balance(config, options.SeqLen)}");
            console.Out.WriteLine($"branch concurrency: {(flowhn.BranchConcurrency ? "on; " : "")}{flowhn.BranchStreamsDescription}");
        }
        using var trainer = new Trainer(device, model, data, options, runDir, console.Out, group, backend, overlapReduction, bucketBytes, zero);
        if (resume) trainer.Resume();
        TrainResult result;
        int interruptedCode;
        Exception? failure = null;
        using (var stop = new StopSignals(trainer, console.Out))
        {
            try
            {
                if (stopAfter is { } at && at > options.Steps)
                    throw new UserException($"--stop-after {at} is beyond the run's last step ({options.Steps}).");
                result = trainer.Run(stopAfter);
                interruptedCode = stop.ExitCode;
            }
            catch (Exception e)
            {
                failure = e; // for the report; the error itself goes on to the caller
                throw;
            }
            finally
            {
                if (group?.IsRoot ?? true) TrainReportStep.Write(console, runDir, device, data, model, options, trainer.Interrupted, failure);
            }
        }
        if (trainer.Interrupted) return interruptedCode;
        if (stopAfter is { } stoppedAt && stoppedAt < options.Steps)
        {
            console.Out.WriteLine($"stopped after step {stoppedAt} as asked; the schedule still ends at step {options.Steps}. " +
                                  $"Continue with: flowhn train --resume --out {runDir}");
            return 0;
        }
        if (result.Evaluations.Count == 0)
        {
            console.Out.WriteLine($"nothing to do: the run in {runDir} has already reached step {options.Steps} (raise --steps to continue)");
            return 0;
        }
        var (firstStep, first) = result.Evaluations[0];
        var (lastStep, last) = result.Evaluations[^1];
        console.Out.WriteLine($"validation loss {first:0.0000} (step {firstStep}) -> {last:0.0000} (step {lastStep}), " +
                              $"{(1 - last / first) * 100:0.0}% lower; run folder {runDir}");
        return 0;
    }

}
