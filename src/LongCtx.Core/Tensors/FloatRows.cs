using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using LongCtx.Quantization;

namespace LongCtx.Tensors;

/// <summary>
/// Widens elements held in a checkpoint's formats (BF16, F16 or F32, or the values of F8E4M3 codes) to float32: the CPU
/// backend computes in float32 but keeps weights where safetensors mapped them, so it widens a few rows at a time; the
/// model reads scale tensors and <c>--quantization fp8</c>'s rows the same way.
/// </summary>
internal static unsafe class FloatRows
{
    /// <summary>Widens destination.Length elements of <paramref name="dtype"/> starting at element <paramref name="offset"/> of data into destination.</summary>
    public static void Read(DType dtype, byte* data, long offset, Span<float> destination)
    {
        int count = destination.Length;
        switch (dtype)
        {
            case DType.F32:
                new ReadOnlySpan<float>((float*)data + offset, count).CopyTo(destination);
                break;
            case DType.F16:
                TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>((Half*)data + offset, count), destination);
                break;
            case DType.BF16:
                WidenBFloat16((ushort*)data + offset, destination);
                break;
            case DType.F8E4M3:
                // The codes' values; an FP8 weight's scales apply after the sum (CpuFp8Linear).
                var table = E4M3.Values;
                byte* codes = data + offset;
                for (int i = 0; i < count; i++) destination[i] = table[codes[i]];
                break;
            default:
                throw new InvalidOperationException($"{dtype} elements are not floats");
        }
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
