using System.Numerics;
using System.Runtime.InteropServices;

namespace LongCtx.Cuda.Runtime;

/// <summary>float ↔ bfloat16 on the host, rounding to nearest even as the GPU does.</summary>
internal static class BFloat16
{
    public static void FromFloat(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        for (int i = 0; i < source.Length; i++)
        {
            uint bits = BitConverter.SingleToUInt32Bits(source[i]);
            if ((bits & 0x7fffffff) > 0x7f800000) { destination[i] = (ushort)((bits >> 16) | 0x40); continue; } // NaN stays NaN
            bits += 0x7fff + ((bits >> 16) & 1);
            destination[i] = (ushort)(bits >> 16);
        }
    }

    /// <summary>Exact (a bf16 is the top half of a float): widened a vector at a time, since every decode step converts the vocabulary's logits.</summary>
    public static void ToFloat(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        if (destination.Length < source.Length) throw new ArgumentException("destination shorter than source");
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var wide = MemoryMarshal.Cast<float, uint>(destination);
            for (; i + Vector<ushort>.Count <= source.Length; i += Vector<ushort>.Count)
            {
                Vector.Widen(new Vector<ushort>(source[i..]), out var low, out var high);
                (low << 16).CopyTo(wide[i..]);
                (high << 16).CopyTo(wide[(i + Vector<uint>.Count)..]);
            }
        }
        for (; i < source.Length; i++) destination[i] = BitConverter.UInt32BitsToSingle((uint)source[i] << 16);
    }
}
