using FlowHN.Data;
using FlowHN.Models;
using FlowHN.Nn;
using FlowHN.Training;

namespace FlowHN.Tests.Models;

/// <summary>Models mark their layers, blocks and branches for observers, forward and (mirrored) backward.</summary>
public class SegmentObserverTests
{
    /// <summary>Writes down every call: "+Kind" begin, "-Kind" end, "b+Kind" backward begin, "b-Kind" backward end.</summary>
    private sealed class Recorder : ISegmentObserver
    {
        private readonly List<SegmentKind> kinds = new();
        public List<string> Calls { get; } = new();

        public int Begin(SegmentKind kind)
        {
            kinds.Add(kind);
            Calls.Add("+" + kind);
            return kinds.Count - 1;
        }

        public void End(int handle) => Calls.Add("-" + kinds[handle]);
        public void BeginBackward(int handle) => Calls.Add("b+" + kinds[handle]);
        public void EndBackward(int handle) => Calls.Add("b-" + kinds[handle]);
    }

    private static readonly TokenBatch Batch = new(Reference.RandomInts(24, 32, 3), Reference.RandomInts(24, 32, 4), 2, 12);

    private static ModelConfig Config(string arch, int layers) => Presets.Get(arch, "tiny", 32) with
    {
        Dim = 8, Layers = layers, Heads = 2, KvHeads = 1, MlpHidden = 12, MambaState = 4,
    };

    /// <summary>
    /// Runs one training step (with the observer attached when given); returns its loss and the updated weights,
    /// which depend on every gradient (the step zeroes the gradients themselves).
    /// </summary>
    private static (float Loss, float[][] Weights) Step(ModelConfig config, ISegmentObserver? observer)
    {
        var device = TestDevice.Cpu;
        using var model = LanguageModel.Create(device, config, seed: 2);
        model.Observer = observer;
        using var optimizer = new AdamW(device, model.Parameters().ToList());
        using var log = new DeviceStepLog(device, 1);
        new TrainingStep(device, model, optimizer).Run(() => Batch, 1e-2, log);
        return (log.Read()[0].Loss, model.Parameters().Select(p => p.ToArray()).ToArray());
    }

    [Fact]
    public void AFlowHNBlockMarksItsForkItsTwoBranchesAndItsJoinAndTheBackwardMirrorsThem()
    {
        var recorder = new Recorder();
        Step(Config("flowhn", 1) with { Split = SplitStrategy.FlopAwareCirculating, SplitContext = SplitContext.Prefix }, recorder);
        Assert.Equal(["+Branches", "+Attention", "-Attention", "+Ssm", "-Ssm", "-Branches",
            "b+Branches", "b+Ssm", "b-Ssm", "b+Attention", "b-Attention", "b-Branches"], recorder.Calls);
    }

    [Fact]
    public void SequentialLayersAndHymbaHeadsAreMarked()
    {
        var shm = new Recorder();
        Step(Config("shm", 2), shm);
        Assert.Equal(["+MambaLayer", "-MambaLayer", "+AttentionLayer", "-AttentionLayer",
            "b+AttentionLayer", "b-AttentionLayer", "b+MambaLayer", "b-MambaLayer"], shm.Calls);
        var hymba = new Recorder();
        Step(Config("hymba", 1), hymba);
        Assert.Equal(["+HymbaLayer", "+Attention", "-Attention", "+Ssm", "-Ssm", "-HymbaLayer",
            "b+HymbaLayer", "b+Ssm", "b-Ssm", "b+Attention", "b-Attention", "b-HymbaLayer"], hymba.Calls);
    }

    [Theory]
    [InlineData("flowhn")]
    [InlineData("hymba")]
    public void ObservingAStepChangesNoResult(string arch)
    {
        var config = Config(arch, 1);
        var (loss, weights) = Step(config, null);
        var (observedLoss, observedWeights) = Step(config, new Recorder());
        Assert.Equal(loss, observedLoss);
        for (int i = 0; i < weights.Length; i++) Assert.Equal(weights[i], observedWeights[i]);
    }
}
