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

    /// <summary>An FP8 weight's scales on the device and its input scheme (<see cref="Fp8DeviceWeight"/>); null for every other tensor.</summary>
    public Fp8DeviceWeight? Fp8 { get; set; }

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
        Fp8?.Scales.Dispose();
    }
}

/// <summary>
/// An FP8 weight's device scales as its GEMMs read them: per output row [n] floats (per-tensor scales repeated), or per
/// 128 × 128 block K-major, <see cref="Stride"/> (the blocks along k rounded up to 4, as cuBLASLt asks) apart per 128 rows.
/// </summary>
internal sealed record Fp8DeviceWeight(Quantization.Fp8Linear Scheme, CudaTensor Scales, int Stride)
{
    public bool Blocks => Scheme.WeightScaling == Quantization.Fp8WeightScaling.Block;
}
