using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using LongCtx.Tensors;

namespace LongCtx.Backends.Cpu;

/// <summary>
/// Reads rows of a weight kept in its checkpoint format (BF16, F16 or F32, or the values of F8E4M3 codes) as float32. The CPU backend
/// computes in float32 but keeps weights where safetensors mapped them, so it widens a few rows at a time.
/// </summary>
internal static unsafe class WeightRows
{
    /// <summary>Widens destination.Length elements starting at element <paramref name="offset"/> of t into destination.</summary>
    public static void Read(CpuTensor t, long offset, Span<float> destination)
    {
        int count = destination.Length;
        switch (t.DType)
        {
            case DType.F32:
                new ReadOnlySpan<float>((float*)t.Data + offset, count).CopyTo(destination);
                break;
            case DType.F16:
                TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>((Half*)t.Data + offset, count), destination);
                break;
            case DType.BF16:
                WidenBFloat16((ushort*)t.Data + offset, destination);
                break;
            case DType.F8E4M3:
                // The codes' values; an FP8 weight's scales apply after the sum (CpuFp8Linear).
                var table = Quantization.E4M3.Values;
                byte* codes = t.Data + offset;
                for (int i = 0; i < count; i++) destination[i] = table[codes[i]];
                break;
            default:
                throw new InvalidOperationException($"{t} is not a float weight");
        }
    }

    /// <summary>
    /// Row view for F32 tensors without copying; widened into scratch otherwise.
    /// </summary>
    public static ReadOnlySpan<float> Row(CpuTensor t, int row, Span<float> scratch)
    {
        int n = t.RowLength;
        if (t.DType == DType.F32) return new ReadOnlySpan<float>((float*)t.Data + (long)row * n, n);
        Read(t, (long)row * n, scratch[..n]);
        return scratch[..n];
    }

    // bfloat16 is the top half of a float32: widening is a 16-bit shift.
    private static void WidenBFloat16(ushort* source, Span<float> destination)
    {
        int i = 0, n = destination.Length;
        fixed (float* d = destination)
        {
            if (Vector256.IsHardwareAccelerated)
            {
                for (; i + 16 <= n; i += 16)
                {
                    var raw = Vector256.Load(source + i);
                    var (lo, hi) = Vector256.Widen(raw);
                    Vector256.ShiftLeft(lo, 16).AsSingle().Store(d + i);
                    Vector256.ShiftLeft(hi, 16).AsSingle().Store(d + i + 8);
                }
            }
            for (; i < n; i++) d[i] = BitConverter.Int32BitsToSingle(source[i] << 16);
        }
    }
}
