using LongCtx.Quantization;

namespace LongCtx.Tensors;

/// <summary>
/// A weight as it sits in host memory: usually a window into a memory-mapped safetensors file, or
/// native memory filled with random values for dummy weights. The owner keeps the memory alive.
/// </summary>
public sealed class HostTensor
{
    public HostTensor(string name, DType dtype, int[] shape, nint data, IDisposable? owner = null)
    {
        Name = name;
        DType = dtype;
        Shape = shape;
        Data = data;
        Owner = owner;
        long n = 1;
        foreach (var d in shape) n *= d;
        Length = n;
    }

    public string Name { get; }
    public DType DType { get; }
    public int[] Shape { get; }
    public long Length { get; }
    public long Bytes => Length * DType.SizeOf();
    /// <summary>Address of the first element (little-endian, row-major).</summary>
    public nint Data { get; }
    public IDisposable? Owner { get; }
    /// <summary>For an F8E4M3 linear weight: its scales and how its input is quantised; null for every other tensor.</summary>
    public Fp8Linear? Fp8 { get; init; }

    public override string ToString() => $"{Name}: {DType}[{string.Join(", ", Shape)}]";
}
