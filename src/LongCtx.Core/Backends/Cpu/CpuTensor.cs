using System.Runtime.InteropServices;
using LongCtx.Tensors;

namespace LongCtx.Backends.Cpu;

/// <summary>
/// A tensor in host memory: native memory it owns (64-byte aligned), or a window into memory someone
/// else owns (a memory-mapped weight, a row view). Native memory lets tensors pass 2^31 elements.
/// </summary>
public sealed unsafe class CpuTensor : Tensor, IHostBytes
{
    private readonly bool _owns;
    private bool _disposed;

    private CpuTensor(DType dtype, int[] shape, byte* data, bool owns) : base(dtype, shape)
    {
        Data = data;
        _owns = owns;
    }

    public byte* Data { get; }
    /// <summary>An FP8 weight's scales and input scheme (<see cref="CpuFp8Linear"/>); null for every other tensor.</summary>
    public Quantization.Fp8Linear? Fp8 { get; init; }
    /// <summary>The checkpoint's name of a weight (for <see cref="IQuantizationHook"/>); null for activations.</summary>
    public string? Name { get; init; }

    public static CpuTensor Allocate(DType dtype, params int[] shape)
    {
        long n = 1;
        foreach (var d in shape) n *= d;
        nuint bytes = (nuint)Math.Max(1, n * dtype.SizeOf());
        var p = (byte*)NativeMemory.AlignedAlloc(bytes, 64);
        NativeMemory.Clear(p, bytes);
        return new CpuTensor(dtype, shape, p, owns: true);
    }

    /// <summary>Wraps memory owned elsewhere; the caller keeps it alive.</summary>
    public static CpuTensor Wrap(DType dtype, int[] shape, nint data, Quantization.Fp8Linear? fp8 = null, string? name = null) =>
        new(dtype, shape, (byte*)data, owns: false) { Fp8 = fp8, Name = name };

    public override Tensor SliceRows(int start, int count)
    {
        if (start < 0 || count < 0 || start + count > Rows)
            throw new ArgumentOutOfRangeException(nameof(start), $"rows [{start}, {start + count}) of {this}");
        var shape = (int[])Shape.Clone();
        shape[0] = count;
        return Inherit(new CpuTensor(DType, shape, Data + (long)start * RowLength * DType.SizeOf(), owns: false));
    }

    public override Tensor View(params int[] shape)
    {
        CheckView(shape);
        return Inherit(new CpuTensor(DType, shape, Data, owns: false));
    }

    public Span<float> F32 => Check(DType.F32, new Span<float>(Data, checked((int)Length)));
    public Span<int> I32 => Check(DType.I32, new Span<int>(Data, checked((int)Length)));
    public Span<byte> RawBytes => new(Data, checked((int)Bytes));

    /// <summary>Row r as float (F32 tensors only).</summary>
    public Span<float> Row(int r) => Check(DType.F32, new Span<float>(Data + (long)r * RowLength * 4, RowLength));

    public override void Dispose()
    {
        if (_owns && !_disposed) NativeMemory.AlignedFree(Data);
        _disposed = true;
    }

    private Span<T> Check<T>(DType expected, Span<T> s) =>
        DType == expected ? s : throw new InvalidOperationException($"{this} is not {expected}");
}
