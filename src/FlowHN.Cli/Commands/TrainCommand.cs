using System.CommandLine;
using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Training;

namespace FlowHN.Cli.Commands;

/// <summary><c>flowhn train</c>: trains a language model on prepared shards or a folder of text files.</summary>
public static class TrainCommand
{
    public static Command Create(CliConsole console)
    {
        var d = new TrainOptions();
        var arch = CliOption.Create("--arch", "Architecture: " + string.Join(", ", Presets.Architectures) + ".", "flowhn");
        var preset = CliOption.Create("--preset", "Model size preset (see `flowhn models`).", "tiny");
        var data = CliOption.Create("--data", "Prepared shard folder (flowhn prepare) or a folder of .txt files (tokenized and cached).", "data/sample");
        var tokenizer = CliOption.Create("--tokenizer", "gpt2 or bytes; auto = bytes for the tiny preset, gpt2 otherwise.", "auto");
        var cache = CliOption.Create("--cache", "Where text folders are tokenized to.", Path.Combine("runs", "data-cache"));
        var output = CliOption.Create("--out", "Run folder for metrics.jsonl and the checkpoint (default: runs/ARCH-PRESET-TIME).", "");
        var steps = CliOption.Create("--steps", "Optimizer steps.", d.Steps);
        var batch = CliOption.Create("--batch", "Sequences per micro-batch.", d.Batch);
        var seq = CliOption.Create("--seq", "Tokens per sequence.", d.SeqLen);
        var accum = CliOption.Create("--accum", "Micro-batches per optimizer step (gradient accumulation).", d.Accumulation);
        var lr = CliOption.Create("--lr", "Peak learning rate.", d.LearningRate);
        var minLr = CliOption.Create("--min-lr-fraction", "Final learning rate as a fraction of the peak (cosine decay).", d.MinLrFraction);
        var warmup = CliOption.Create("--warmup", "Fraction of the steps spent warming up linearly.", d.WarmupFraction);
        var decay = CliOption.Create("--weight-decay", "AdamW decoupled weight decay (not applied to norms and embeddings).", d.WeightDecay);
        var clip = CliOption.Create("--grad-clip", "Clip the global gradient norm to this (0 = off).", d.GradClip);
        var evalEvery = CliOption.Create("--eval-every", "Evaluate on the validation data every N steps (and at the start and end).", d.EvalEvery);
        var evalBatches = CliOption.Create("--eval-batches", "Validation batches per evaluation.", d.EvalBatches);
        var checkpointEvery = CliOption.Create("--checkpoint-every", "Save a checkpoint every N steps (and at the end).", d.CheckpointEvery);
        var logEvery = CliOption.Create("--log-every", "Print a progress line every N steps.", d.LogEvery);
        var seed = CliOption.Create("--seed", "Seed of initialisation and data order.", d.Seed);
        var split = CliOption.Create("--split", "FlowHN token split: none, ae (alternating halves), fa (FLOP-aware), fac (FLOP-aware circulating).", "fac");
        var splitContext = CliOption.Create("--split-context", "FlowHN: local (each branch sees only its tokens, as the paper's code) or prefix " +
                                                  "(attention keys cover all earlier tokens).", "prefix");
        var splitRatio = CliOption.Create("--split-ratio", "FlowHN fa/fac attention share: flops (balance the FLOP model), time (balance branch " +
                                              "times measured on this device) or a number in (0, 1).", "flops");
        var noConcurrency = new Option<bool>("--no-branch-concurrency")
        {
            Description = "FlowHN: run the two branches of a block one after the other instead of on two CUDA streams (ablation).",
        };
        var resume = new Option<bool>("--resume") { Description = "Continue the run in --out from its checkpoint." };
        var recompute = new Option<bool>("--recompute")
        {
            Description = "Activation checkpointing: keep only each layer's output in the forward and run the layer again in the " +
                          "backward (most activation memory saved for about a third more compute; same results).",
        };
        var deviceOptions = new DeviceOptionSet();

        var command = new Command("train", "Train a language model and report loss, tokens/s and MFU; writes metrics.jsonl and checkpoints.");
        foreach (var option in new Option[] { arch, preset, data, tokenizer, cache, output, steps, batch, seq, accum, lr, minLr, warmup,
                     decay, clip, evalEvery, evalBatches, checkpointEvery, logEvery, seed, split, splitContext, splitRatio, noConcurrency, recompute, resume })
            command.Options.Add(option);
        deviceOptions.AddTo(command);
        command.SetAction(r =>
        {
            var options = new TrainOptions
            {
                Steps = r.GetValue(steps), Batch = r.GetValue(batch), SeqLen = r.GetValue(seq), Accumulation = r.GetValue(accum),
                LearningRate = r.GetValue(lr), MinLrFraction = r.GetValue(minLr), WarmupFraction = r.GetValue(warmup),
                WeightDecay = r.GetValue(decay), GradClip = r.GetValue(clip), EvalEvery = r.GetValue(evalEvery),
                EvalBatches = r.GetValue(evalBatches), CheckpointEvery = r.GetValue(checkpointEvery), LogEvery = r.GetValue(logEvery),
                Seed = r.GetValue(seed),
            };
            string archName = r.GetValue(arch)!, presetName = r.GetValue(preset)!;
            string tokenizerName = r.GetValue(tokenizer)!;
            if (tokenizerName == "auto") tokenizerName = presetName == "tiny" ? ByteTokenizer.TokenizerName : Gpt2Tokenizer.TokenizerName;
            string runDir = r.GetValue(output)!;
            bool resuming = r.GetValue(resume);
            if (runDir.Length == 0)
            {
                if (resuming) throw new UserException("--resume needs --out pointing at the run folder to continue.");
                runDir = Path.Combine("runs", $"{archName}-{presetName}-{DateTime.Now:yyyyMMdd-HHmmss}");
            }
            if (!resuming && Directory.Exists(Checkpoint.PathIn(runDir)))
                throw new UserException($"{runDir} already holds a checkpoint. Use --resume to continue it, or another --out.");
            var routing = new SplitChoice(SplitWords.ParseStrategy(r.GetValue(split)!), SplitWords.ParseContext(r.GetValue(splitContext)!),
                ParseRatio(r.GetValue(splitRatio)!), !r.GetValue(noConcurrency));
            return Train(console, deviceOptions.Read(r), archName, presetName, routing, r.GetValue(data)!, tokenizerName, r.GetValue(cache)!,
                runDir, options, resuming, r.GetValue(recompute));
        });
        return command;
    }

    private sealed record SplitChoice(SplitStrategy Strategy, SplitContext Context, string Ratio, bool Concurrent);

    private static string ParseRatio(string text)
    {
        if (text is "flops" or "time") return text;
        if (double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double r)
            && r > 0 && r < 1) return text;
        throw new UserException($"--split-ratio must be 'flops', 'time' or a number between 0 and 1, not '{text}'.");
    }

    private static int Train(CliConsole console, DeviceOptions deviceOptions, string arch, string preset, SplitChoice split, string dataPath,
        string tokenizer, string cacheDir, string runDir, TrainOptions options, bool resume, bool recompute)
    {
        options.Validate();
        var data = DataSource.Open(dataPath, tokenizer, cacheDir);
        console.Out.WriteLine($"data: {data.Directory} ({data.TokenizerName}, {data.Train.Length:N0} train / {data.Validation.Length:N0} validation tokens)");
        var config = resume
            ? Checkpoint.LoadConfig(Checkpoint.PathIn(runDir))
            : Presets.Get(arch, preset, data.VocabSize) with { Split = split.Strategy, SplitContext = split.Context, SplitRatio = split.Ratio };
        if (config.Arch == "flowhn")
            console.Out.WriteLine($"split: {SplitWords.Word(config.Split)}, context {SplitWords.Word(config.SplitContext)}, " +
                                  $"ratio {config.SplitRatio}");
        using var device = ComputeDevice.Create(deviceOptions);
        console.Out.WriteLine($"device: {device.Describe()}; matmul: {device.Kernels.Gemm.BackendName}");
        if (config.Arch == "flowhn" && config.SplitRatio == "time")
        {
            var (ratio, samples) = SplitTimer.Measure(device, config, options.Batch, options.SeqLen);
            foreach (var m in samples)
                console.Out.WriteLine($"  timing: attention {m.AttentionTokens,5} tokens {m.AttentionMs,8:0.00} ms | " +
                                      $"SSM {options.SeqLen - m.AttentionTokens,5} tokens {m.SsmMs,8:0.00} ms");
            config = config with { SplitRatio = ratio.ToString("0.####", System.Globalization.CultureInfo.InvariantCulture) };
            console.Out.WriteLine($"--split-ratio time: measured times balance at an attention share of {config.SplitRatio}");
        }
        using var model = LanguageModel.Create(device, config, options.Seed);
        model.Recompute = recompute;
        if (recompute) console.Out.WriteLine("activation checkpointing: on (layers run again in the backward)");
        if (model is FlowHNLM flowhn)
        {
            flowhn.BranchConcurrency = device.IsCuda && split.Concurrent;
            if (config.Split is SplitStrategy.FlopAware or SplitStrategy.FlopAwareCirculating)
                console.Out.WriteLine($"FLOP-aware split at L={options.SeqLen}: {FlowHNLM.Balance(config, options.SeqLen)}");
            console.Out.WriteLine($"branch concurrency: {(flowhn.BranchConcurrency ? "on (two CUDA streams)" : "off")}");
        }
        using var trainer = new Trainer(device, model, data, options, runDir, console.Out);
        if (resume) trainer.Resume();
        // Ctrl+C finishes the current step and saves a checkpoint instead of losing the run.
        bool stopping = false;
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            if (stopping) return; // a second Ctrl+C ends the process at once
            stopping = true;
            e.Cancel = true;
            console.Out.WriteLine("stopping after this step (Ctrl+C again to abort without saving)...");
            trainer.RequestStop();
        };
        Console.CancelKeyPress += onCancel;
        TrainResult result;
        Exception? failure = null;
        try
        {
            result = trainer.Run();
        }
        catch (Exception e)
        {
            failure = e; // for the report; the error itself goes on to the caller
            throw;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
            TrainReportStep.Write(console, runDir, device, data, model, options, trainer.Interrupted, failure);
        }
        if (trainer.Interrupted) return 130;
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
