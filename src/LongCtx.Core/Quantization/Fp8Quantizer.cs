namespace LongCtx.Quantization;

/// <summary>
/// The activation and weight quantisers of the FP8 formats, exactly as bench/reference/FP8.md defines them: every scale
/// and every scaled value one float32 operation on float32 operands, amax the exact maximum of |x| over its group.
/// </summary>
public static class Fp8Quantizer
{
    /// <summary>vLLM's floor on dynamic per-token scales, f32(1 / (448 · 512)).</summary>
    public const float MinPerTokenScale = 1f / (448f * 512f);
    private const float GroupAmaxFloor = 1e-10f, BoundedAmaxFloor = 1e-12f;

    /// <summary>
    /// Quantises <paramref name="rows"/> rows of <paramref name="k"/> inputs as <paramref name="scheme"/> says: codes
    /// [rows, k] and scales (<see cref="Fp8Activations.ScaleCount"/>: per row, per row and group, or the static one).
    /// </summary>
    public static void Activations(Fp8Activations scheme, ReadOnlySpan<float> x, int rows, int k, Span<byte> codes, Span<float> scales)
    {
        if (scheme.Scaling == Fp8ActivationScaling.Static)
        {
            scales[0] = scheme.Parameter;
            E4M3.Quantize(x[..(rows * k)], scheme.Parameter, codes);
            return;
        }
        for (int r = 0; r < rows; r++) Row(scheme, x.Slice(r * k, k), codes.Slice(r * k, k), scales.Slice(r * scheme.ScalesPerRow(k), scheme.ScalesPerRow(k)));
    }

    /// <summary>One row of a dynamic scheme.</summary>
    public static void Row(Fp8Activations scheme, ReadOnlySpan<float> x, Span<byte> codes, Span<float> scales)
    {
        switch (scheme.Scaling)
        {
            case Fp8ActivationScaling.PerToken:
                scales[0] = PerTokenScale(x);
                E4M3.Quantize(x, scales[0], codes);
                break;
            case Fp8ActivationScaling.PerTokenBounded:
                float m = Math.Min(Math.Max(Amax(x), BoundedAmaxFloor), scheme.Parameter);
                float inverse = E4M3.Max / m;
                scales[0] = 1f / inverse;
                E4M3.QuantizeMultiplying(x, inverse, codes);
                break;
            case Fp8ActivationScaling.PerTokenGroup:
                int g = Fp8Activations.Group;
                for (int j = 0; j < x.Length / g; j++)
                {
                    var part = x.Slice(j * g, g);
                    scales[j] = Math.Max(Amax(part), GroupAmaxFloor) / E4M3.Max;
                    E4M3.Quantize(part, scales[j], codes.Slice(j * g, g));
                }
                break;
            default:
                throw new ArgumentException($"{scheme} is not a per-row scheme");
        }
    }

    /// <summary>max(f32(amax / 448), <see cref="MinPerTokenScale"/>): per-token activations and <c>--quantization fp8</c>'s weight rows.</summary>
    public static float PerTokenScale(ReadOnlySpan<float> x) => Math.Max(Amax(x) / E4M3.Max, MinPerTokenScale);

    public static float Amax(ReadOnlySpan<float> x) => x.IsEmpty ? 0f : MathF.Abs(System.Numerics.Tensors.TensorPrimitives.MaxMagnitude(x));
}
