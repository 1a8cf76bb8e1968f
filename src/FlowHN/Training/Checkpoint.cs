using System.Text.Json;
using FlowHN.Models;
using FlowHN.Runtime;

namespace FlowHN.Training;

/// <summary>What besides the tensors a checkpoint must hold to continue a run exactly.</summary>
/// <param name="ValidationNames">The documents the run validates on (null in checkpoints from older builds).</param>
public sealed record TrainState(int Step, ulong LoaderState, int OptimizerSteps, long TokensSeen, string Tokenizer,
    TrainOptions Options, IReadOnlyList<string>? ValidationNames = null);

/// <summary>
/// A checkpoint directory: model.safetensors (weights, PyTorch layout), optimizer.safetensors (AdamW moments
/// as <c>exp_avg.NAME</c> and <c>exp_avg_sq.NAME</c>), config.json (the model) and state.json (the run).
/// The embedding and LM head are written with exactly the vocabulary's rows: their padding rows (see
/// Nn.VocabularyPadding), always zero, are neither written nor read, so files load in PyTorch as they are.
/// A save goes to <c>checkpoint.tmp/</c>, which is renamed <c>checkpoint.next/</c> once complete and on disk.
/// <see cref="Promote"/> then swaps it in (<c>checkpoint/</c> to <c>checkpoint.old/</c>, <c>checkpoint.next/</c>
/// to <c>checkpoint/</c>, delete <c>checkpoint.old/</c>); the trainer promotes only once a finite loss has been
/// computed from the saved weights. <see cref="Recover"/> repairs a folder a crash left between the two renames.
/// </summary>
public static class Checkpoint
{
    public const string DirectoryName = "checkpoint";
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public static string PathIn(string runDir) => Path.Combine(runDir, DirectoryName);
    public static string NextIn(string runDir) => PathIn(runDir) + ".next";
    public static string OldIn(string runDir) => PathIn(runDir) + ".old";
    private static string TempIn(string runDir) => PathIn(runDir) + ".tmp";

    /// <summary>Writes a complete checkpoint to <c>checkpoint.next/</c> (replacing an unpromoted one).</summary>
    /// <param name="gatheredMoments">ZeRO-1: the whole flat moment buffers, gathered from every rank's shard
    /// (the optimizer then holds only its own shard); null: the optimizer's own.</param>
    public static void SaveNext(string runDir, LanguageModel model, AdamW optimizer, TrainState state,
        (float[] M, float[] V)? gatheredMoments = null)
    {
        string temp = TempIn(runDir), next = NextIn(runDir);
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        Directory.CreateDirectory(temp);
        try
        {
            var parameters = model.Parameters().ToList();
            Safetensors.Write(Path.Combine(temp, "model.safetensors"),
                parameters.Select(p => Safetensors.Source.Of(p.Name, p.Real)).ToList(),
                new Dictionary<string, string> { ["format"] = "pt", ["arch"] = model.Config.Arch });
            Safetensors.Write(Path.Combine(temp, "optimizer.safetensors"), parameters.SelectMany(p =>
            {
                if (gatheredMoments is var (allM, allV))
                    return new[] { FromFlat("exp_avg." + p.Name, p, allM), FromFlat("exp_avg_sq." + p.Name, p, allV) };
                var (m, v) = optimizer.StateOf(p);
                return new[]
                {
                    Safetensors.Source.Of("exp_avg." + p.Name, p.RealRowsOf(m)), Safetensors.Source.Of("exp_avg_sq." + p.Name, p.RealRowsOf(v)),
                };
            }).ToList());
            WriteDurably(Path.Combine(temp, "config.json"), JsonSerializer.Serialize(model.Config, Json));
            WriteDurably(Path.Combine(temp, "state.json"), JsonSerializer.Serialize(state, Json)); // written last: marks it complete
        }
        catch (IOException e) when (IsDiskFull(e))
        {
            TryDelete(temp);
            throw new UserException($"The disk is full: the checkpoint of step {state.Step} could not be written to {temp}. " +
                                    $"Free space and resume with --resume --out {runDir}; {PathIn(runDir)} is untouched.", e);
        }
        if (Directory.Exists(next)) Directory.Delete(next, recursive: true);
        Directory.Move(temp, next);
    }

    /// <summary>A parameter's real rows (the first ones) as they lie in a flat host buffer laid out like its store.</summary>
    private static Safetensors.Source FromFlat(string name, Autograd.Parameter p, float[] flat)
    {
        long start = p.Store!.Offsets[p];
        return new Safetensors.Source(name, p.Real.Shape, (offset, chunk) => flat.AsSpan((int)(start + offset), chunk.Length).CopyTo(chunk));
    }

    /// <summary>Makes <c>checkpoint.next/</c> the checkpoint. A crash at any point leaves a state <see cref="Recover"/> repairs.</summary>
    public static void Promote(string runDir)
    {
        string final = PathIn(runDir), next = NextIn(runDir), old = OldIn(runDir);
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
        if (Directory.Exists(final))
        {
            Directory.Move(final, old);
            FaultHooks.At("between-renames");
        }
        Directory.Move(next, final);
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
    }

    /// <summary>Saves and promotes at once (for callers that have already checked the weights).</summary>
    public static void Save(string runDir, LanguageModel model, AdamW optimizer, TrainState state)
    {
        SaveNext(runDir, model, optimizer, state);
        Promote(runDir);
    }

    /// <summary>
    /// Repairs a run folder a crash left with no <c>checkpoint/</c> but a <c>checkpoint.old/</c> (a promotion was
    /// under way): the promoted <c>checkpoint.next/</c> when it is complete and passes its checksums, else the old
    /// one. Nothing is deleted. Returns a line saying what was done, or null when nothing needed doing.
    /// </summary>
    public static string? Recover(string runDir)
    {
        string final = PathIn(runDir), next = NextIn(runDir), old = OldIn(runDir);
        if (Directory.Exists(final) || !Directory.Exists(old)) return null;
        if (Directory.Exists(next) && IsComplete(next, out _))
        {
            Directory.Move(next, final);
            return $"recovered: an interrupted save left {next}; it is complete and now the checkpoint";
        }
        if (!IsComplete(old, out string why))
            throw new UserException($"{runDir} holds no usable checkpoint: {old} is damaged ({why}). Start a new run.");
        Directory.Move(old, final);
        return $"recovered: an interrupted save left {old}; it is complete and now the checkpoint";
    }

    /// <summary>Whether a checkpoint directory has its four files and every tensor passes its checksum.</summary>
    public static bool IsComplete(string dir, out string why)
    {
        foreach (var file in new[] { "config.json", "state.json", "model.safetensors", "optimizer.safetensors" })
            if (!File.Exists(Path.Combine(dir, file)))
            {
                why = $"missing {file}";
                return false;
            }
        try
        {
            LoadState(dir);
            LoadConfig(dir);
            foreach (var file in new[] { "model.safetensors", "optimizer.safetensors" })
            {
                using var f = SafetensorsFile.Open(Path.Combine(dir, file));
                f.Verify();
            }
        }
        catch (UserException e)
        {
            why = e.Message;
            return false;
        }
        why = "";
        return true;
    }

    public static ModelConfig LoadConfig(string checkpointDir) =>
        ParseJson<ModelConfig>(checkpointDir, "config.json");

    public static TrainState LoadState(string checkpointDir) =>
        ParseJson<TrainState>(checkpointDir, "state.json");

    /// <summary>
    /// Copies saved weights (and, when given, optimizer moments) into the model's parameters, tensor by tensor
    /// through one bounded host buffer; each tensor's checksum is verified.
    /// </summary>
    public static void LoadInto(string checkpointDir, LanguageModel model, AdamW? optimizer)
    {
        using var weights = SafetensorsFile.Open(Path.Combine(checkpointDir, "model.safetensors"));
        using var moments = optimizer is null ? null : SafetensorsFile.Open(Path.Combine(checkpointDir, "optimizer.safetensors"));
        var buffer = new float[Safetensors.ChunkFloats];
        foreach (var p in model.Parameters())
        {
            Load(weights, p.Name, p.Real, checkpointDir, buffer);
            if (optimizer is null) continue;
            if (optimizer.Shard is { } shard)
            {
                LoadShard(moments!, p, shard, optimizer, checkpointDir, buffer);
                continue;
            }
            var (m, v) = optimizer.StateOf(p);
            Load(moments!, "exp_avg." + p.Name, p.RealRowsOf(m), checkpointDir, buffer);
            Load(moments!, "exp_avg_sq." + p.Name, p.RealRowsOf(v), checkpointDir, buffer);
        }
    }

    /// <summary>
    /// ZeRO-1: the part of a parameter's saved moments that lies in this rank's shard (every rank reads its own
    /// part of the one file; the rest of each tensor is read past).
    /// </summary>
    private static void LoadShard(SafetensorsFile file, Autograd.Parameter p, ParameterShard shard, AdamW optimizer, string dir, float[] buffer)
    {
        long start = p.Store!.Offsets[p];
        if (shard.Overlap(start, p.RealLength).Length == 0) return;
        foreach (var (prefix, second) in new[] { ("exp_avg.", false), ("exp_avg_sq.", true) })
        {
            CheckShape(file, prefix + p.Name, p.Real.Shape, dir);
            file.ReadInto(prefix + p.Name, (offset, chunk) =>
            {
                var (at, length) = shard.Overlap(start + offset, chunk.Length);
                if (length > 0) optimizer.WriteShardMoment(second, at, chunk.Slice((int)(shard.Offset + at - start - offset), (int)length));
            }, buffer);
        }
    }

    private static void CheckShape(SafetensorsFile file, string name, int[] shape, string dir)
    {
        if (!file.Contains(name))
            throw new UserException($"Checkpoint {dir} has no tensor '{name}': it was saved by a different model.");
        if (!file.Shape(name).SequenceEqual(shape))
            throw new UserException($"Checkpoint {dir}: tensor '{name}' has shape [{string.Join(", ", file.Shape(name))}], " +
                                    $"the model expects [{string.Join(", ", shape)}].");
    }

    private static void Load(SafetensorsFile file, string name, Tensors.Tensor target, string dir, float[] buffer)
    {
        if (!file.Contains(name))
            throw new UserException($"Checkpoint {dir} has no tensor '{name}': it was saved by a different model.");
        if (!file.Shape(name).SequenceEqual(target.Shape))
            throw new UserException($"Checkpoint {dir}: tensor '{name}' has shape [{string.Join(", ", file.Shape(name))}], " +
                                    $"the model expects [{string.Join(", ", target.Shape)}].");
        file.ReadInto(name, (offset, chunk) => target.CopyRangeFromHost(offset, chunk), buffer);
    }

    private static T ParseJson<T>(string dir, string file)
    {
        string path = Path.Combine(dir, file);
        if (!File.Exists(path))
            throw new UserException($"No checkpoint at {dir} (missing {file}). The folder holds no finished save of a run: train one first (flowhn train), or name another run folder.");
        try
        {
            return JsonSerializer.Deserialize<T>(File.ReadAllText(path)) ?? throw new JsonException("the file is empty");
        }
        catch (JsonException e)
        {
            throw new UserException($"{path} is not valid JSON ({e.Message}). The checkpoint is damaged; use another one.", e);
        }
    }

    private static void WriteDurably(string path, string text)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write);
        stream.Write(System.Text.Encoding.UTF8.GetBytes(text));
        stream.Flush(flushToDisk: true);
    }

    /// <summary>ENOSPC (28) or EFBIG (27, a file-size limit) from the OS.</summary>
    internal static bool IsDiskFull(IOException e) => (e.HResult & 0xFFFF) is 28 or 27 || e.Message.Contains("No space left", StringComparison.Ordinal);

    private static void TryDelete(string dir)
    {
        try
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: the next save deletes it anyway.
        }
    }
}
