using LongCtx.Backends;

namespace LongCtx.Model;

/// <summary>
/// The RoPE settings of a model, whichever way config.json spelled them (transformers 5 <c>rope_parameters</c>
/// or transformers 4 top-level <c>rope_theta</c> + <c>rope_scaling</c>). <see cref="BuildTable"/> turns them into
/// the inverse frequencies and attention scale the backends apply, computed exactly as transformers'
/// <c>modeling_rope_utils</c> does (in double, then rounded to float once).
/// </summary>
public sealed record RopeConfig
{
    /// <summary>RoPE types <see cref="BuildTable"/> knows, as transformers names them.</summary>
    public static readonly IReadOnlyList<string> SupportedTypes = ["default", "linear", "dynamic", "llama3", "yarn"];

    /// <summary>One of <see cref="SupportedTypes"/>.</summary>
    public required string RopeType { get; init; }
    /// <summary>rope_theta, the base of the frequencies.</summary>
    public required double Theta { get; init; }
    /// <summary>Context extension factor (linear, dynamic, llama3, yarn); 1 for default.</summary>
    public double Factor { get; init; } = 1;
    /// <summary>llama3: wavelengths longer than original/low_freq_factor are fully scaled.</summary>
    public double LowFreqFactor { get; init; } = 1;
    /// <summary>llama3: wavelengths shorter than original/high_freq_factor are untouched.</summary>
    public double HighFreqFactor { get; init; } = 4;
    /// <summary>The pretraining context (llama3, yarn, dynamic); 0 when the type does not use it.</summary>
    public int OriginalMaxPositionEmbeddings { get; init; }
    /// <summary>yarn: rotations that bound the ramp between extrapolated and interpolated dimensions.</summary>
    public double BetaFast { get; init; } = 32;
    public double BetaSlow { get; init; } = 1;
    /// <summary>yarn (DeepSeek style): attention factor = mscale(factor, Mscale) / mscale(factor, MscaleAllDim).</summary>
    public double? Mscale { get; init; }
    public double? MscaleAllDim { get; init; }
    /// <summary>yarn: explicit attention factor; when null it is derived from the factor (0.1 ln(factor) + 1).</summary>
    public double? AttentionFactor { get; init; }
    /// <summary>yarn: round the correction range to whole dimensions (transformers' default).</summary>
    public bool Truncate { get; init; } = true;

    public static RopeConfig Default(double theta) => new() { RopeType = "default", Theta = theta };

    public static RopeConfig Llama3(double theta, double factor, double lowFreqFactor, double highFreqFactor, int originalMaxPositionEmbeddings) => new()
    {
        RopeType = "llama3", Theta = theta, Factor = factor, LowFreqFactor = lowFreqFactor,
        HighFreqFactor = highFreqFactor, OriginalMaxPositionEmbeddings = originalMaxPositionEmbeddings,
    };

    /// <summary>
    /// The table for heads of <paramref name="headDim"/> dimensions: InvFreq has headDim/2 entries.
    /// "dynamic" (NTK) is computed as default: transformers only changes the base once a sequence grows
    /// past max_position_embeddings, and the engine refuses prompts longer than that, so within what the
    /// engine runs the two are identical.
    /// </summary>
    public RopeTable BuildTable(int headDim)
    {
        if (headDim <= 0 || headDim % 2 != 0)
            throw new LongCtxException($"RoPE needs an even, positive head dimension, got {headDim}");
        int half = headDim / 2;
        var inv = new double[half];
        // transformers: inv_freq = 1 / base^(arange(0, dim, 2) / dim)
        for (int i = 0; i < half; i++) inv[i] = 1.0 / Math.Pow(Theta, 2.0 * i / headDim);

        double attentionScale = 1.0;
        switch (RopeType)
        {
            case "default":
            case "dynamic":
                break;
            case "linear":
                for (int i = 0; i < half; i++) inv[i] /= Factor;
                break;
            case "llama3":
                ApplyLlama3(inv);
                break;
            case "yarn":
                attentionScale = ApplyYarn(inv, headDim);
                break;
            default:
                throw UnsupportedType(RopeType, "rope type");
        }

        var f = new float[half];
        for (int i = 0; i < half; i++) f[i] = (float)inv[i];
        return new RopeTable(f, (float)attentionScale);
    }

    // transformers _compute_llama3_parameters: long wavelengths are divided by the factor, short ones kept,
    // and the band in between is blended by how many wavelengths fit in the original context.
    private void ApplyLlama3(double[] inv)
    {
        double oldContext = OriginalMaxPositionEmbeddings;
        double lowFreqWavelen = oldContext / LowFreqFactor;
        double highFreqWavelen = oldContext / HighFreqFactor;
        for (int i = 0; i < inv.Length; i++)
        {
            double wavelen = 2 * Math.PI / inv[i];
            if (wavelen > lowFreqWavelen) inv[i] /= Factor;
            else if (wavelen >= highFreqWavelen)
            {
                double smooth = (oldContext / wavelen - LowFreqFactor) / (HighFreqFactor - LowFreqFactor);
                inv[i] = (1 - smooth) * inv[i] / Factor + smooth * inv[i];
            }
        }
    }

    // transformers _compute_yarn_parameters: dimensions that rotate fast (more than beta_fast turns over the
    // original context) keep their frequency, slow ones (fewer than beta_slow) are interpolated by the factor,
    // with a linear ramp between; cos/sin are scaled by the attention factor.
    private double ApplyYarn(double[] inv, int dim)
    {
        double factor = Factor;
        double attention = AttentionFactor
            ?? (Mscale is double m && m != 0 && MscaleAllDim is double mAll && mAll != 0
                ? YarnMscale(factor, m) / YarnMscale(factor, mAll)
                : YarnMscale(factor, 1));

        double low = CorrectionDim(BetaFast, dim), high = CorrectionDim(BetaSlow, dim);
        if (Truncate) { low = Math.Floor(low); high = Math.Ceiling(high); }
        low = Math.Max(low, 0);
        high = Math.Min(high, dim - 1);
        if (low == high) high += 0.001; // transformers: prevent a zero-width ramp

        for (int i = 0; i < inv.Length; i++)
        {
            double extrapolation = inv[i];
            double interpolation = inv[i] / factor;
            double ramp = Math.Clamp((i - low) / (high - low), 0, 1);
            double extrapolationFactor = 1 - ramp;
            inv[i] = interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor;
        }
        return attention;
    }

    // The dimension whose wavelength fits `rotations` times into the original context.
    private double CorrectionDim(double rotations, int dim) =>
        dim * Math.Log(OriginalMaxPositionEmbeddings / (rotations * 2 * Math.PI)) / (2 * Math.Log(Theta));

    private static double YarnMscale(double scale, double mscale) => scale <= 1 ? 1.0 : 0.1 * mscale * Math.Log(scale) + 1.0;

    internal static LongCtxException UnsupportedType(string type, string field, string? source = null) =>
        new($"{(source is null ? "" : source + ": ")}RoPE type '{type}' ({field}) is not supported (supported: {string.Join(", ", SupportedTypes)})");
}
