using BenchmarkDotNet.Attributes;
using FlowHN.Kernels;
using FlowHN.Models;
using FlowHN.Tensors;

namespace FlowHN.Benchmarks;

/// <summary>
/// Token routing of one FlowHN block (the second block of a fac split, whose attention window wraps around the
/// sequence, with the paper's 59% attention share): "gather" takes both branches' rows out of the sequence
/// (Ops.GatherTokens), "merge" puts them back (Ops.MergeTokens). Either moves the whole sequence once: it reads
/// and writes batch x length x dim floats, plus the positions. The 135M model's width on CUDA (batch 8, length
/// 1024, dim 768), the tiny model's on the CPU accelerator.
/// </summary>
public class RoutingBenchmarks : DeviceBenchmark
{
    private const double AttentionShare = 0.59;

    private RoutingShape attentionShape, ssmShape;
    private Tensor? sequence, attentionRows, ssmRows, attentionPositions, ssmPositions;

    /// <summary>batch x length x dim.</summary>
    public static IEnumerable<string> Shapes() => BenchmarkDevice.IsCuda ? ["8x1024x768"] : ["2x256x128"];

    public static IEnumerable<string> Directions() => ["gather", "merge"];

    [ParamsSource(nameof(Shapes))]
    public string Shape { get; set; } = "2x256x128";

    [ParamsSource(nameof(Directions))]
    public string Direction { get; set; } = "gather";

    public override double Bytes
    {
        get
        {
            int[] d = Dims(Shape);
            return sizeof(float) * (2.0 * d[0] * d[1] * d[2] + d[1]);
        }
    }

    protected override void Prepare()
    {
        int[] d = Dims(Shape);
        int batch = d[0], length = d[1], dim = d[2];
        var plan = SplitPlanner.Plan(SplitStrategy.FlopAwareCirculating, SplitContext.Prefix, blockIndex: 1, blockCount: 2,
            length, (int)Math.Round(AttentionShare * length));
        attentionShape = RoutingLauncher.Shape(batch, length, plan.AttentionPositions.Length, dim);
        ssmShape = RoutingLauncher.Shape(batch, length, plan.SsmPositions.Length, dim);
        sequence = RandomTensor([batch, length, dim]);
        attentionRows = RandomTensor([batch, attentionShape.Count, dim]);
        ssmRows = RandomTensor([batch, ssmShape.Count, dim]);
        attentionPositions = Tensor.FromArray(Device, plan.AttentionPositions, plan.AttentionPositions.Length);
        ssmPositions = Tensor.FromArray(Device, plan.SsmPositions, plan.SsmPositions.Length);
    }

    /// <summary>Both branches' rows out of (gather) or back into (merge) the sequence, then wait for the device.</summary>
    [Benchmark]
    public void Route()
    {
        var kernels = Device.Kernels.Routing;
        if (Direction == "gather")
        {
            kernels.Gather(attentionShape, sequence!.View, attentionPositions!.IntView, attentionRows!.View);
            kernels.Gather(ssmShape, sequence.View, ssmPositions!.IntView, ssmRows!.View);
        }
        else
        {
            kernels.ScatterInto(attentionShape, attentionRows!.View, attentionPositions!.IntView, sequence!.View);
            kernels.ScatterInto(ssmShape, ssmRows!.View, ssmPositions!.IntView, sequence.View);
        }
        Device.Runtime.Synchronize();
    }
}
