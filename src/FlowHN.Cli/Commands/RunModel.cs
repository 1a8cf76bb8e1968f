using FlowHN.Autograd;
using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Runtime;
using FlowHN.Training;

namespace FlowHN.Cli.Commands;

/// <summary>A trained model loaded from a run folder's checkpoint, with the tokenizer it was trained with.</summary>
public sealed class RunModel : IDisposable
{
    private RunModel(LanguageModel model, ITokenizer tokenizer, TrainState state)
    {
        Model = model;
        Tokenizer = tokenizer;
        State = state;
    }

    public LanguageModel Model { get; }
    public ITokenizer Tokenizer { get; }
    public TrainState State { get; }

    public static RunModel Load(Session device, string runDir)
    {
        string dir = Checkpoint.PathIn(runDir);
        if (!Directory.Exists(runDir)) throw new UserException($"No checkpoint: run folder {runDir} does not exist. Point --run at the --out of flowhn train.");
        if (!Directory.Exists(dir) && Directory.Exists(Checkpoint.OldIn(runDir)))
        {
            using var runLock = RunLock.Acquire(runDir); // repairs only when no training process is writing the folder
            Checkpoint.Recover(runDir);
        }
        var config = Checkpoint.LoadConfig(dir);
        var state = Checkpoint.LoadState(dir);
        var model = LanguageModel.Create(device, config, seed: 0);
        Checkpoint.LoadInto(dir, model, optimizer: null);
        model.TrainedLength = state.Options.SeqLen; // FlowHN's routing by position repeats the trained plan
        return new RunModel(model, Tokenizers.Create(state.Tokenizer), state);
    }

    public void Dispose() => Model.Dispose();
}
