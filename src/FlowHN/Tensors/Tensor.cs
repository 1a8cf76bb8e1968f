using FlowHN.Runtime;
using ILGPU;
using ILGPU.Runtime;

namespace FlowHN.Tensors;

public enum DType { Float32, Int32 }

/// <summary>
/// A view of device memory: a block, an element offset, a shape and element strides. Several tensors may view
/// one block (reshape, slice, transpose); only the tensor that allocated the block frees it. Kernels take
/// contiguous tensors except the matrix product, which takes strides.
/// </summary>
public class Tensor : IDisposable
{
    private DeviceBlock? block;

    /// <param name="block">null only for a parameter planned but not yet allocated (see ParameterStore).</param>
    internal Tensor(TensorDevice device, DeviceBlock? block, long offset, int[] shape, long[] strides, DType dtype, bool ownsBlock)
    {
        Device = device;
        this.block = block;
        Offset = offset;
        Shape = shape;
        Strides = strides;
        DType = dtype;
        OwnsBlock = ownsBlock;
        Birth = ownsBlock ? block!.Id : device.Runtime.Allocator.TakeId();
    }

    public TensorDevice Device { get; }

    private ComputeDevice Runtime => Device.Runtime;

    /// <summary>When this tensor was created, in the allocator's id order (its block's id when it owns one).</summary>
    internal long Birth { get; }
    internal DeviceBlock Block => block ?? throw new InvalidOperationException(
        "This parameter has no device memory yet: a model's parameters are allocated together, once the model is " +
        "built, by AllocateParameters() (LanguageModel.Create calls it).");

    /// <summary>Whether this tensor has device memory (a planned parameter has none until it is allocated).</summary>
    internal bool IsAllocated => block is not null;
    public long Offset { get; private set; }
    public int[] Shape { get; }
    public long[] Strides { get; }
    public DType DType { get; }
    internal bool OwnsBlock { get; private set; }

    /// <summary>Places this tensor on a block (a planned parameter on the model's flat buffer).</summary>
    internal void Rebind(DeviceBlock block, long offset, bool ownsBlock)
    {
        if (!IsContiguous) throw new InvalidOperationException("Only contiguous tensors can be rebound.");
        this.block = block;
        Offset = offset;
        OwnsBlock = ownsBlock;
    }
    public bool IsDisposed => block is { IsFreed: true };

    // Autograd state (see Autograd/Tape.cs).
    public bool RequiresGrad { get; set; }

    /// <summary>For int tensors uploaded from the host (token positions): the host copy, for FLOP accounting.</summary>
    internal int[]? HostInts { get; set; }
    public Tensor? Grad { get; internal set; }

    public int Rank => Shape.Length;
    public long Length => ShapeLength(Shape);
    public int Dim(int axis) => Shape[axis < 0 ? Shape.Length + axis : axis];

    public static long ShapeLength(ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (int d in shape) n *= d;
        return n;
    }

    public static long[] ContiguousStrides(int[] shape)
    {
        var strides = new long[shape.Length];
        long s = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            strides[i] = s;
            s *= shape[i];
        }
        return strides;
    }

    public bool IsContiguous
    {
        get
        {
            long s = 1;
            for (int i = Shape.Length - 1; i >= 0; i--)
            {
                if (Shape[i] != 1 && Strides[i] != s) return false;
                s *= Shape[i];
            }
            return true;
        }
    }

    /// <summary>The elements of a contiguous float tensor.</summary>
    public ArrayView<float> View
    {
        get
        {
            RequireContiguous();
            if (DType != DType.Float32) throw new InvalidOperationException("View is for float tensors; use IntView.");
            return Block.View.SubView(Offset, Length);
        }
    }

    /// <summary>The elements of a contiguous int tensor.</summary>
    public ArrayView<int> IntView
    {
        get
        {
            RequireContiguous();
            if (DType != DType.Int32) throw new InvalidOperationException("IntView is for int tensors; use View.");
            return Block.View.SubView(Offset, Length).Cast<int>();
        }
    }

    /// <summary>The whole block from this tensor's offset on, for kernels that index with strides.</summary>
    internal ArrayView<float> StridedView => Block.View.SubView(Offset);

    private void RequireContiguous()
    {
        if (!IsContiguous)
            throw new InvalidOperationException($"Tensor {ShapeString} is a strided view; copy it first (Ops.Transpose and Ops.SliceLast return contiguous copies).");
    }

    public string ShapeString => "[" + string.Join(", ", Shape) + "]";

    public override string ToString() => $"Tensor{ShapeString} {DType}";

    // ---- creation -------------------------------------------------------------------------------------

    /// <summary>
    /// Uninitialised storage; inside a scope it is freed when the scope ends, unless <paramref name="persistent"/>
    /// (then the caller disposes it).
    /// </summary>
    public static Tensor Empty(TensorDevice device, int[] shape, DType dtype = DType.Float32, bool persistent = false)
    {
        foreach (int d in shape)
            if (d < 0) throw new ArgumentException($"Negative dimension in shape [{string.Join(", ", shape)}].");
        var block = device.Runtime.Allocator.Allocate(Math.Max(1, ShapeLength(shape)));
        if (!persistent) device.CurrentScope?.Track(block);
        return new Tensor(device, block, 0, (int[])shape.Clone(), ContiguousStrides(shape), dtype, ownsBlock: true);
    }

    public static Tensor Zeros(TensorDevice device, int[] shape, DType dtype = DType.Float32)
    {
        var t = Empty(device, shape, dtype);
        if (!device.Runtime.IsMeta) t.Block.View.SubView(0, Math.Max(1, t.Length)).MemSetToZero(device.Runtime.CurrentStream.Native);
        device.Runtime.Counters.Kernel();
        return t;
    }

    public static Tensor FromArray(TensorDevice device, float[] data, params int[] shape)
    {
        if (ShapeLength(shape) != data.Length)
            throw new ArgumentException($"{data.Length} values do not fill shape [{string.Join(", ", shape)}].");
        var t = Empty(device, shape);
        t.CopyFrom(data);
        return t;
    }

    public static Tensor FromArray(TensorDevice device, int[] data, params int[] shape) =>
        FromArray(device, data, shape, persistent: false);

    public static Tensor FromArray(TensorDevice device, int[] data, int[] shape, bool persistent)
    {
        if (ShapeLength(shape) != data.Length)
            throw new ArgumentException($"{data.Length} values do not fill shape [{string.Join(", ", shape)}].");
        var t = Empty(device, shape, DType.Int32, persistent);
        t.CopyFrom(data);
        t.HostInts = data;
        return t;
    }

    // ---- host copies ----------------------------------------------------------------------------------

    public void CopyFrom(float[] data)
    {
        if (data.Length != Length) throw new ArgumentException($"Expected {Length} values, got {data.Length}.");
        if (!Runtime.IsMeta) View.CopyFromCPU(Runtime.CurrentStream.Native, data);
        Runtime.Counters.Upload(4L * data.Length);
    }

    public void CopyFrom(int[] data)
    {
        if (data.Length != Length) throw new ArgumentException($"Expected {Length} values, got {data.Length}.");
        if (!Runtime.IsMeta) IntView.CopyFromCPU(Runtime.CurrentStream.Native, data);
        Runtime.Counters.Upload(4L * data.Length);
    }

    /// <summary>
    /// Downloads a float tensor in row-major order (waits for queued work). A strided view (such as logits whose
    /// rows carry vocabulary padding) is read as the span it covers and gathered on the host.
    /// </summary>
    public float[] ToArray()
    {
        if (!IsContiguous) return GatherStrided();
        var result = new float[Length];
        if (!Runtime.IsMeta) View.CopyToCPU(Runtime.CurrentStream.Native, result); // a shape-only device reads zeros
        Runtime.CurrentStream.Synchronize();
        Runtime.Counters.Download();
        return result;
    }

    private float[] GatherStrided()
    {
        if (DType != DType.Float32) throw new InvalidOperationException("ToArray is for float tensors; use ToIntArray.");
        var result = new float[Length];
        if (Length == 0) return result;
        long span = 1;
        for (int i = 0; i < Rank; i++) span += (Shape[i] - 1) * Strides[i];
        var covered = new float[span];
        if (!Runtime.IsMeta) Block.View.SubView(Offset, span).CopyToCPU(Device.Runtime.CurrentStream.Native, covered);
        Device.Runtime.CurrentStream.Synchronize();
        Device.Runtime.Counters.Download();
        var index = new int[Rank];
        for (long n = 0; n < result.Length; n++)
        {
            long at = 0;
            for (int i = 0; i < Rank; i++) at += index[i] * Strides[i];
            result[n] = covered[at];
            for (int i = Rank - 1; i >= 0 && ++index[i] == Shape[i]; i--) index[i] = 0;
        }
        return result;
    }

    /// <summary>
    /// Downloads elements [offset, offset + buffer.Length) of a contiguous float tensor into a host buffer, so
    /// large tensors can be streamed to disk through one bounded buffer (waits for queued work).
    /// </summary>
    public void CopyRangeToHost(long offset, Span<float> buffer)
    {
        if (buffer.IsEmpty) return;
        if (Runtime.IsMeta) buffer.Clear();
        // The span overload pins the host memory for the copy (one taking a ref to it would not: see HostCopyTests).
        else View.SubView(offset, buffer.Length).CopyToCPU(Runtime.CurrentStream.Native, buffer);
        Runtime.CurrentStream.Synchronize();
        Runtime.Counters.Download();
    }

    /// <summary>Uploads a host buffer into elements [offset, offset + buffer.Length) of a contiguous float tensor.</summary>
    public void CopyRangeFromHost(long offset, ReadOnlySpan<float> buffer)
    {
        if (buffer.IsEmpty) return;
        if (!Runtime.IsMeta)
            View.SubView(offset, buffer.Length).CopyFromCPU(Runtime.CurrentStream.Native, buffer); // pinned for the copy
        // The host buffer is reused for the next chunk as soon as this returns.
        Runtime.CurrentStream.Synchronize();
        Runtime.Counters.Upload(4L * buffer.Length);
    }

    public int[] ToIntArray()
    {
        var result = new int[Length];
        if (!Runtime.IsMeta) IntView.CopyToCPU(Runtime.CurrentStream.Native, result);
        Runtime.CurrentStream.Synchronize();
        Runtime.Counters.Download();
        return result;
    }

    /// <summary>Reads a one-element tensor.</summary>
    public float Item()
    {
        if (Length != 1) throw new InvalidOperationException($"Item() needs one element, tensor has shape {ShapeString}.");
        return ToArray()[0];
    }

    // ---- views (no copies) ----------------------------------------------------------------------------

    internal Tensor ViewAs(int[] shape, long[] strides, long offset) =>
        new(Device, Block, offset, shape, strides, DType, ownsBlock: false);

    /// <summary>Same elements, new shape (contiguous tensors only); one dimension may be -1.</summary>
    public Tensor ReshapeView(params int[] shape)
    {
        RequireContiguous();
        shape = ResolveShape(shape, Length);
        return ViewAs(shape, ContiguousStrides(shape), Offset);
    }

    /// <summary>Swaps two axes by swapping strides.</summary>
    public Tensor TransposeView(int axisA, int axisB)
    {
        var shape = (int[])Shape.Clone();
        var strides = (long[])Strides.Clone();
        (shape[axisA], shape[axisB]) = (shape[axisB], shape[axisA]);
        (strides[axisA], strides[axisB]) = (strides[axisB], strides[axisA]);
        return ViewAs(shape, strides, Offset);
    }

    /// <summary>Rows <paramref name="start"/>..start+count of the first axis.</summary>
    public Tensor SliceView(int start, int count)
    {
        if (start < 0 || count < 0 || start + count > Shape[0])
            throw new ArgumentOutOfRangeException(nameof(start), $"Slice {start}+{count} outside axis of {Shape[0]}.");
        var shape = (int[])Shape.Clone();
        shape[0] = count;
        return ViewAs(shape, (long[])Strides.Clone(), Offset + start * Strides[0]);
    }

    /// <summary>Elements start .. start+length of the last axis (a strided view).</summary>
    public Tensor SliceLastView(int start, int length)
    {
        if (start < 0 || length < 0 || start + length > Shape[^1])
            throw new ArgumentOutOfRangeException(nameof(start), $"Slice {start}+{length} outside last axis of {Shape[^1]}.");
        var shape = (int[])Shape.Clone();
        shape[^1] = length;
        return ViewAs(shape, (long[])Strides.Clone(), Offset + start * Strides[^1]);
    }

    /// <summary>
    /// The tensor as a matrix [rows, last axis] without copying, rows <c>Strides[0]</c> apart. Works for contiguous
    /// tensors and for a prefix of the last axis of one (logits with vocabulary padding): any tensor whose last
    /// axis has unit stride and whose leading axes are evenly spaced rows.
    /// </summary>
    public Tensor RowsView()
    {
        int columns = Rank == 0 ? 1 : Shape[^1];
        long rowStride = Rank < 2 ? columns : Strides[^2];
        if (Rank > 0 && columns > 1 && Strides[^1] != 1)
            throw new InvalidOperationException($"Tensor {ShapeString} has no unit-stride last axis; copy it first.");
        for (int i = Rank - 3; i >= 0; i--)
            if (Shape[i] != 1 && Strides[i] != Strides[i + 1] * Shape[i + 1])
                throw new InvalidOperationException($"Tensor {ShapeString}: its rows are not evenly spaced; copy it first.");
        int rows = (int)(columns == 0 ? 0 : Length / columns);
        return ViewAs([rows, columns], [rowStride, 1], Offset);
    }

    internal static int[] ResolveShape(int[] shape, long length)
    {
        shape = (int[])shape.Clone();
        int unknown = Array.IndexOf(shape, -1);
        if (unknown >= 0)
        {
            long known = 1;
            for (int i = 0; i < shape.Length; i++) if (i != unknown) known *= shape[i];
            shape[unknown] = known == 0 ? 0 : (int)(length / known);
        }
        if (ShapeLength(shape) != length)
            throw new ArgumentException($"Cannot view {length} elements as [{string.Join(", ", shape)}].");
        return shape;
    }

    public virtual void Dispose()
    {
        if (OwnsBlock && block is not null) Runtime.Allocator.Free(block);
    }
}
