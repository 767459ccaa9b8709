using System.Runtime.CompilerServices;

namespace LongCtx.Quantization;

/// <summary>
/// float8 e4m3fn (OCP FP8 E4M3, safetensors F8_E4M3): one byte S EEEE MMM, bias 7, no infinities, 0x7F/0xFF NaN,
/// largest value 448. <see cref="Encode"/> clamps to ±448 and rounds to the nearest value, ties to the even code, the
/// sign kept for values that round to zero (bench/reference/FP8.md).
/// </summary>
public static class E4M3
{
    public const float Max = 448f;

    /// <summary>The value of every code (NaN at 0x7F and 0xFF).</summary>
    public static readonly float[] Values = BuildValues();

    private static float[] BuildValues()
    {
        var t = new float[256];
        for (int c = 0; c < 256; c++)
        {
            int e = (c >> 3) & 15, m = c & 7;
            float v = e == 15 && m == 7 ? float.NaN : e == 0 ? m * (1f / 512) : (1 + m / 8f) * MathF.Pow(2, e - 7);
            t[c] = (c & 0x80) != 0 ? -v : v;
        }
        return t;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Decode(byte code) => Values[code];

    /// <summary>The code of v clamped to ±448 and rounded to the nearest e4m3 value, ties to even.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte Encode(float v)
    {
        uint bits = BitConverter.SingleToUInt32Bits(v);
        byte sign = (byte)((bits >> 24) & 0x80);
        float a = MathF.Abs(v);
        if (!(a < Max)) return (byte)(sign | 0x7E); // 448 and beyond (NaN never reaches here: scales are positive, inputs finite)
        int exponent = (int)((BitConverter.SingleToUInt32Bits(a) >> 23) & 0xFF) - 127;
        if (exponent < -6)
        {
            // Subnormals are multiples of 2^-9; a * 512 is exact and 8 (the carry into 2^-6) is code 0x08 itself.
            return (byte)(sign | (int)MathF.Round(a * 512f, MidpointRounding.ToEven));
        }
        // a / 2^(e-3) is exact: a mantissa in [8, 16] once rounded; 16 carries into the next exponent.
        int m = (int)MathF.Round(a * ScaleB(3 - exponent), MidpointRounding.ToEven);
        if (m == 16) { m = 8; exponent++; }
        return (byte)(sign | ((exponent + 7) << 3) | (m - 8));
    }

    /// <summary>codes[i] = Encode(f32(x[i] / scale)).</summary>
    public static void Quantize(ReadOnlySpan<float> x, float scale, Span<byte> codes)
    {
        for (int i = 0; i < x.Length; i++) codes[i] = Encode(x[i] / scale);
    }

    /// <summary>codes[i] = Encode(f32(x[i] · inverse)) (fbgemm multiplies by the inverse scale).</summary>
    public static void QuantizeMultiplying(ReadOnlySpan<float> x, float inverse, Span<byte> codes)
    {
        for (int i = 0; i < x.Length; i++) codes[i] = Encode(x[i] * inverse);
    }

    /// <summary>values[i] = the value of codes[i] · scale (exact in float32 for bf16 scales).</summary>
    public static void Dequantize(ReadOnlySpan<byte> codes, float scale, Span<float> values)
    {
        var table = Values;
        for (int i = 0; i < codes.Length; i++) values[i] = table[codes[i]] * scale;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float ScaleB(int n) => BitConverter.Int32BitsToSingle((127 + n) << 23);
}
