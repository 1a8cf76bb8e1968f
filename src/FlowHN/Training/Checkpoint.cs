using System.Text.Json;
using FlowHN.Models;
using FlowHN.Runtime;

namespace FlowHN.Training;

/// <summary>What besides the tensors a checkpoint must hold to continue a run exactly.</summary>
public sealed record TrainState(int Step, ulong LoaderState, int OptimizerSteps, long TokensSeen, string Tokenizer,
    TrainOptions Options);

/// <summary>
/// A checkpoint directory: model.safetensors (weights, PyTorch layout), optimizer.safetensors (AdamW moments
/// as <c>exp_avg.NAME</c> and <c>exp_avg_sq.NAME</c>), config.json (the model) and state.json (the run).
/// It is written into a temporary directory that then replaces the previous checkpoint by renames, so a crash
/// at any moment leaves either the old checkpoint or the new one, never a mix.
/// </summary>
public static class Checkpoint
{
    public const string DirectoryName = "checkpoint";
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public static string PathIn(string runDir) => Path.Combine(runDir, DirectoryName);

    public static void Save(string runDir, LanguageModel model, AdamW optimizer, TrainState state)
    {
        string final = PathIn(runDir), temp = final + ".tmp", old = final + ".old";
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        Directory.CreateDirectory(temp);
        var parameters = model.Parameters().ToList();
        Safetensors.Write(Path.Combine(temp, "model.safetensors"),
            parameters.Select(p => new Safetensors.Entry(p.Name, p.Shape, p.ToArray())),
            new Dictionary<string, string> { ["format"] = "pt", ["arch"] = model.Config.Arch });
        Safetensors.Write(Path.Combine(temp, "optimizer.safetensors"), parameters.SelectMany(p =>
        {
            var (m, v) = optimizer.StateOf(p);
            return new[] { new Safetensors.Entry("exp_avg." + p.Name, p.Shape, m.ToArray()),
                           new Safetensors.Entry("exp_avg_sq." + p.Name, p.Shape, v.ToArray()) };
        }));
        File.WriteAllText(Path.Combine(temp, "config.json"), JsonSerializer.Serialize(model.Config, Json));
        File.WriteAllText(Path.Combine(temp, "state.json"), JsonSerializer.Serialize(state, Json));
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
        if (Directory.Exists(final)) Directory.Move(final, old);
        Directory.Move(temp, final);
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
    }

    public static ModelConfig LoadConfig(string checkpointDir) =>
        JsonSerializer.Deserialize<ModelConfig>(ReadText(checkpointDir, "config.json"))
        ?? throw new UserException($"{checkpointDir}/config.json is empty.");

    public static TrainState LoadState(string checkpointDir) =>
        JsonSerializer.Deserialize<TrainState>(ReadText(checkpointDir, "state.json"))
        ?? throw new UserException($"{checkpointDir}/state.json is empty.");

    /// <summary>Copies saved weights (and, when given, optimizer moments) into the model's parameters.</summary>
    public static void LoadInto(string checkpointDir, LanguageModel model, AdamW? optimizer)
    {
        var weights = Safetensors.Read(Path.Combine(checkpointDir, "model.safetensors"));
        var moments = optimizer is null ? null : Safetensors.Read(Path.Combine(checkpointDir, "optimizer.safetensors"));
        foreach (var p in model.Parameters())
        {
            p.CopyFrom(Find(weights, p.Name, p.Shape, checkpointDir));
            if (optimizer is null) continue;
            var (m, v) = optimizer.StateOf(p);
            m.CopyFrom(Find(moments!, "exp_avg." + p.Name, p.Shape, checkpointDir));
            v.CopyFrom(Find(moments!, "exp_avg_sq." + p.Name, p.Shape, checkpointDir));
        }
    }

    private static float[] Find(Dictionary<string, Safetensors.Entry> entries, string name, int[] shape, string dir)
    {
        if (!entries.TryGetValue(name, out var e))
            throw new UserException($"Checkpoint {dir} has no tensor '{name}': it was saved by a different model.");
        if (!e.Shape.SequenceEqual(shape))
            throw new UserException($"Checkpoint {dir}: tensor '{name}' has shape [{string.Join(", ", e.Shape)}], " +
                                    $"the model expects [{string.Join(", ", shape)}].");
        return e.Data;
    }

    private static string ReadText(string dir, string file)
    {
        string path = Path.Combine(dir, file);
        if (!File.Exists(path))
            throw new UserException($"No checkpoint at {dir} (missing {file}). Start without --resume, or point --out at a run directory.");
        return File.ReadAllText(path);
    }
}
