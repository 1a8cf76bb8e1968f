using System.Reflection;
using FlowHN.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Tests.Runtime;

/// <summary>
/// Copies between device memory and managed host arrays while the garbage collector moves objects. ILGPU's copy
/// overloads that take a <c>ref T</c> to the host data want it pinned: they take its address, then allocate
/// (a wrapper buffer) before copying, so a collection in between moves a fresh array and the copy goes to (or comes
/// from) where the array was. A download then leaves the array as it was made (all zeros) and writes into freed
/// heap memory. The span and array overloads pin the host memory for the copy.
/// </summary>
public class HostCopyTests
{
    private const int Length = 4096; // 16 KiB: a small-object-heap array, which a collection may move

    /// <summary>Runs <paramref name="copies"/> while another thread forces compacting collections of new objects.</summary>
    private static int CountWrong(Func<int, bool> copies, int rounds)
    {
        using var stop = new CancellationTokenSource();
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested) GC.Collect(0, GCCollectionMode.Forced, blocking: true, compacting: true);
        }) { IsBackground = true };
        collector.Start();
        int wrong = 0;
        try
        {
            for (int round = 0; round < rounds; round++)
                if (!copies(round)) wrong++;
        }
        finally
        {
            stop.Cancel();
            collector.Join();
        }
        return wrong;
    }

    [Fact]
    public void DownloadsIntoFreshArraysAreRightWhileCollectionsMoveThem()
    {
        var device = TestDevice.Cpu;
        using var scope = device.BeginScope();
        var values = Enumerable.Range(1, Length).Select(i => (float)i).ToArray();
        var tensor = Tensor.FromArray(device, values, Length);
        int wrong = CountWrong(_ =>
        {
            var host = new float[Length];
            tensor.CopyRangeToHost(0, host);
            return host.AsSpan().SequenceEqual(values);
        }, rounds: 3000);
        Assert.Equal(0, wrong);
    }

    [Fact]
    public void UploadsFromFreshArraysAreRightWhileCollectionsMoveThem()
    {
        var device = TestDevice.Cpu;
        using var scope = device.BeginScope();
        var tensor = Tensor.Zeros(device, [Length]);
        int wrong = CountWrong(round =>
        {
            var host = new float[Length];
            host.AsSpan().Fill(round + 1);
            tensor.CopyRangeFromHost(0, host);
            return tensor.ToArray().All(v => v == round + 1); // ToArray copies through a pinned array
        }, rounds: 3000);
        Assert.Equal(0, wrong);
    }

    /// <summary>
    /// ILGPU's host copies that take a <c>ref T</c> (CopyToCPU, CopyFromCPU and their UnsafeAsync forms,
    /// CPUMemoryBuffer.Create) are for pinned memory only; nothing here calls them: managed arrays and spans go
    /// through the overloads that pin them. Read from the compiled code, so every call site is seen.
    /// </summary>
    [Fact]
    public void NoHostCopyTakesAReferenceToUnpinnedMemory()
    {
        Assembly[] assemblies = [typeof(Tensor).Assembly, typeof(FlowHN.Cli.FlowHnCli).Assembly,
            typeof(FlowHN.Benchmarks.AttentionBenchmarks).Assembly, typeof(HostCopyTests).Assembly];
        var calls = assemblies.SelectMany(a => a.GetTypes()).SelectMany(CodeReader.MethodsOf)
            .SelectMany(m => CodeReader.MembersIn(m).OfType<MethodBase>().Where(TakesAHostReference)
                .Select(called => $"{m.DeclaringType!.FullName}.{m.Name} calls {called.Name}"))
            .Distinct().ToList();
        // The one call is the example below, which shows that the reader sees such a call.
        Assert.Equal([$"{typeof(HostCopyTests).FullName}.{nameof(UnpinnedCopyForTheCheck)} calls CopyToCPU"], calls);
    }

    private static bool TakesAHostReference(MethodBase method) =>
        method.DeclaringType?.Assembly == typeof(Accelerator).Assembly && method.Name.Contains("CPU", StringComparison.Ordinal)
        && method.GetParameters().Any(p => p.ParameterType.IsByRef && !p.IsIn);

    /// <summary>What the check above finds (never run): the address of a managed array's first element, unpinned.</summary>
    private static void UnpinnedCopyForTheCheck(ArrayView<float> view, AcceleratorStream stream, float[] host) =>
        view.CopyToCPU(stream, ref host[0], host.Length);
}
