using FlowHN.Autograd;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Diagnostics;

/// <summary>
/// Part of <c>flowhn check</c>: are FlowHN's branch streams what the overlap relies on? On CUDA the driver's own
/// answer (cuStreamGetPriority) must be the device's highest priority for the SSM branch's stream and the default
/// for attention's, and a kernel launched on the high-priority stream (made through the driver and handed to
/// ILGPU) must give the right numbers once joined to the main stream. On the CPU accelerator there is nothing to
/// check: streams run one after the other and have no priority.
/// </summary>
public static class StreamPriorityCheck
{
    public const string Name = "streams.branch-priority";

    /// <summary>The check's result on CUDA; null on the CPU accelerator (and a shape-only device), where it does not apply.</summary>
    public static KernelCheckResult? Run(Session session, int seed = 1234)
    {
        var device = session.Runtime;
        if (device.StreamPriorities is not { } range) return null;
        using var noGrad = new NoGradScope(session);
        using var scope = session.BeginScope();
        using var streams = new BranchStreams(session);
        int attention = streams.First.QueryPriority()!.Value, ssm = streams.Second.QueryPriority()!.Value;
        string? failure = Judge(range, ssm, attention, device.DefaultStream.QueryPriority()!.Value);

        var random = new Random(seed);
        int n = 1 << 16;
        var a = Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var b = Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var x = Tensor.FromArray(session, a, n);
        var y = Tensor.FromArray(session, b, n);
        var product = Tensor.Empty(session, [n]);
        streams.Fork();
        using (device.UseStream(streams.Second))
            session.Kernels.Elementwise.Multiply(x.View, y.View, product.View);
        streams.Join();
        double error = HostReference.RelativeError(product.ToArray(), a.Select((v, i) => (double)v * b[i]).ToArray());
        device.Synchronize(); // the streams go away with this scope
        return new KernelCheckResult(Name, error, KernelChecks.ElementwiseTolerance, failure);
    }

    /// <summary>
    /// Null when the priorities the driver reports are right: attention at the main stream's (default) priority,
    /// the SSM at the top of the range, above attention whenever the device has more than one level; else why not.
    /// </summary>
    internal static string? Judge(StreamPriorityRange range, int ssm, int attention, int main) =>
        ssm == range.Greatest && attention == main && (!range.HasLevels || ssm < attention)
            ? null
            : $"SSM stream at priority {ssm}, attention at {attention}, main stream at {main}; expected the SSM at {range.Greatest} " +
              $"and attention at the main stream's (range {range})";
}
