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
        for (int r = 0; r < rows; r++) Row(scheme, x, r, k, codes, scales);
    }

    /// <summary>
    /// Row <paramref name="r"/> of <see cref="Activations"/>' x [rows, k]: its codes into row r of codes, its scales into
    /// row r of scales (the static scheme's one scale into scales[0], by every row). Rows are independent: any order, any thread.
    /// </summary>
    public static void Row(Fp8Activations scheme, ReadOnlySpan<float> x, int r, int k, Span<byte> codes, Span<float> scales)
    {
        var row = x.Slice(r * k, k);
        var rowCodes = codes.Slice(r * k, k);
        int perRow = scheme.ScalesPerRow(k);
        var rowScales = scheme.Scaling == Fp8ActivationScaling.Static ? scales[..1] : scales.Slice(r * perRow, perRow);
        switch (scheme.Scaling)
        {
            case Fp8ActivationScaling.Static:
                rowScales[0] = scheme.Parameter;
                E4M3.Quantize(row, scheme.Parameter, rowCodes);
                break;
            case Fp8ActivationScaling.PerToken:
                rowScales[0] = PerTokenScale(row);
                E4M3.Quantize(row, rowScales[0], rowCodes);
                break;
            case Fp8ActivationScaling.PerTokenBounded:
                float m = Math.Min(Math.Max(Amax(row), BoundedAmaxFloor), scheme.Parameter);
                float inverse = E4M3.Max / m;
                rowScales[0] = 1f / inverse;
                E4M3.QuantizeMultiplying(row, inverse, rowCodes);
                break;
            case Fp8ActivationScaling.PerTokenGroup:
                int g = Fp8Activations.Group;
                for (int j = 0; j < row.Length / g; j++)
                {
                    var part = row.Slice(j * g, g);
                    rowScales[j] = Math.Max(Amax(part), GroupAmaxFloor) / E4M3.Max;
                    E4M3.Quantize(part, rowScales[j], rowCodes.Slice(j * g, g));
                }
                break;
            default:
                throw new ArgumentException($"{scheme} is not an FP8 activation scheme");
        }
    }

    /// <summary>max(f32(amax / 448), <see cref="MinPerTokenScale"/>): per-token activations and <c>--quantization fp8</c>'s weight rows.</summary>
    public static float PerTokenScale(ReadOnlySpan<float> x) => Math.Max(Amax(x) / E4M3.Max, MinPerTokenScale);

    public static float Amax(ReadOnlySpan<float> x) => x.IsEmpty ? 0f : MathF.Abs(System.Numerics.Tensors.TensorPrimitives.MaxMagnitude(x));
}
