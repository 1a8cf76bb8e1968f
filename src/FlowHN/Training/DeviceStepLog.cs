using FlowHN.Autograd;
using FlowHN.Runtime;
using FlowHN.Tensors;
using ILGPU;

namespace FlowHN.Training;

/// <summary>
/// Each step's loss and gradient norm, kept on the device until the trainer reads them all in one download
/// (on logging, evaluation and checkpoint steps): the steps in between never wait for the host.
/// </summary>
public sealed class DeviceStepLog : IDisposable
{
    private readonly Session device;
    private readonly Tensor values; // [capacity, 2]: loss, gradient norm
    private readonly int capacity;

    public DeviceStepLog(Session device, int capacity)
    {
        this.device = device;
        this.capacity = capacity;
        values = Tensor.Empty(device, [capacity, 2], persistent: true);
    }

    /// <summary>Steps recorded since the last read.</summary>
    public int Pending { get; private set; }

    public bool IsFull => Pending == capacity;

    /// <summary>Copies a step's loss and gradient norm (one-element views) into the next row, on the device.</summary>
    public void Record(ArrayView<float> loss, ArrayView<float> gradNorm)
    {
        if (IsFull) throw new InvalidOperationException("Read the step log before recording more steps.");
        var row = values.View.SubView(2L * Pending, 2);
        device.Kernels.Elementwise.Copy(loss, row.SubView(0, 1));
        device.Kernels.Elementwise.Copy(gradNorm, row.SubView(1, 1));
        Pending++;
    }

    /// <summary>
    /// Overwrites the last recorded loss with NaN on the device (fault injection, <c>FLOWHN_FAULT=nan:step-N</c>),
    /// so the injected NaN reaches the trainer the way a real one would: through the next read.
    /// </summary>
    internal void PoisonLast()
    {
        if (Pending == 0) throw new InvalidOperationException("No step recorded yet.");
        device.Kernels.Elementwise.Fill(values.View.SubView(2L * (Pending - 1), 1), float.NaN);
    }

    /// <summary>Downloads the pending steps' (loss, gradient norm) in step order and starts over.</summary>
    public IReadOnlyList<(float Loss, float GradNorm)> Read()
    {
        if (Pending == 0) return [];
        var all = values.ToArray();
        var steps = Enumerable.Range(0, Pending).Select(i => (all[2 * i], all[2 * i + 1])).ToList();
        Pending = 0;
        return steps;
    }

    public void Dispose() => values.Dispose();
}
