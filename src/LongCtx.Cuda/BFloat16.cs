namespace LongCtx.Cuda;

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

    public static void ToFloat(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        for (int i = 0; i < source.Length; i++) destination[i] = BitConverter.UInt32BitsToSingle((uint)source[i] << 16);
    }
}
