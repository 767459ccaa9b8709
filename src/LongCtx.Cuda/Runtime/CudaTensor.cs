using LongCtx.Tensors;

namespace LongCtx.Cuda.Runtime;

/// <summary>A tensor in GPU memory: a block of the device's pool it returns on Dispose, or a view of one.</summary>
internal sealed class CudaTensor : Tensor
{
    private readonly DeviceMemoryPool? _owner;
    private bool _disposed;

    private CudaTensor(DType dtype, int[] shape, nint pointer, DeviceMemoryPool? owner) : base(dtype, shape)
    {
        Pointer = pointer;
        _owner = owner;
    }

    public nint Pointer { get; }

    public static CudaTensor Allocate(DeviceMemoryPool pool, DType dtype, int[] shape)
    {
        var t = new CudaTensor(dtype, shape, 0, null);
        return new CudaTensor(dtype, shape, t.Bytes == 0 ? 0 : pool.Allocate(t.Bytes), t.Bytes == 0 ? null : pool);
    }

    public override Tensor SliceRows(int start, int count)
    {
        if (start < 0 || count < 0 || start + count > Rows)
            throw new ArgumentOutOfRangeException(nameof(start), $"rows [{start}, {start + count}) of {this}");
        var shape = (int[])Shape.Clone();
        shape[0] = count;
        return Inherit(new CudaTensor(DType, shape, Pointer + (nint)((long)start * RowLength * DType.SizeOf()), null));
    }

    public override Tensor View(params int[] shape)
    {
        CheckView(shape);
        return Inherit(new CudaTensor(DType, shape, Pointer, null));
    }

    public override void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _owner?.Free(Pointer, Bytes);
    }
}
