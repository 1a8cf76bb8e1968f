using BenchmarkDotNet.Attributes;
using FlowHN.Autograd;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Benchmarks;

/// <summary>
/// What every benchmark shares: the device (chosen by <c>--device</c>, created in the benchmark process), seeded
/// random inputs, the parsing of shape parameters and the clean-up. A benchmark allocates its inputs in
/// <see cref="Prepare"/> and declares its work per invocation for the Throughput column.
/// </summary>
public abstract class DeviceBenchmark : IWorkload
{
    private Session? device;
    private Random random = new(1);

    protected Session Device => device ?? throw new InvalidOperationException("The benchmark has not been set up.");

    public virtual double Flops => 0;
    public virtual double Bytes => 0;
    public virtual double Tokens => 0;

    /// <summary>The matrix-product backend the device is created with.</summary>
    protected virtual GemmBackendKind Gemm => GemmBackendKind.Auto;

    /// <summary>The device's options (the <c>--device</c> choice; a benchmark may change the CPU preset).</summary>
    protected virtual DeviceOptions Options => BenchmarkDevice.Options(Gemm);

    /// <summary>Allocates the inputs on <see cref="Device"/>.</summary>
    protected abstract void Prepare();

    [GlobalSetup]
    public void Setup()
    {
        device = Session.Create(Options);
        random = new Random(1);
        Console.WriteLine($"// device: {device.Runtime.Describe()}, matmul: {device.Kernels.Gemm.BackendName}, peak {device.Runtime.Peak}");
        Prepare();
    }

    /// <summary>
    /// Sets the benchmark up on a device the caller owns and keeps (tests run a benchmark's own code on theirs);
    /// <see cref="Release"/> frees what it allocated there.
    /// </summary>
    public void Setup(Session existing)
    {
        device = existing;
        random = new Random(1);
        Prepare();
    }

    /// <summary>Frees what <see cref="Prepare"/> allocated that outlives a benchmark (models, optimizer state).</summary>
    public virtual void Release() { }

    [GlobalCleanup]
    public void Cleanup()
    {
        Release();
        device?.Dispose();
        device = null;
    }

    /// <summary>Splits a shape parameter such as "8x1024x768" into its sizes.</summary>
    protected static int[] Dims(string shape) => shape.Split('x').Select(int.Parse).ToArray();

    /// <summary>Uniform values in [shift - scale/2, shift + scale/2) (never zeros, which would flatter some kernels).</summary>
    protected float[] RandomValues(long count, double scale = 2, double shift = 0) =>
        Enumerable.Range(0, checked((int)count)).Select(_ => (float)(shift + scale * (random.NextDouble() - 0.5))).ToArray();

    protected Tensor RandomTensor(int[] shape, double scale = 2, double shift = 0) =>
        Tensor.FromArray(Device, RandomValues(Tensor.ShapeLength(shape), scale, shift), shape);

    protected int[] RandomInts(int count, int maxExclusive) =>
        Enumerable.Range(0, count).Select(_ => random.Next(maxExclusive)).ToArray();
}
