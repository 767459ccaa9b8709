using System.Numerics;
using System.Numerics.Tensors;

namespace LongCtx.Sampling;

/// <summary>How the next token is drawn from the logits.</summary>
public sealed record SamplingOptions(float Temperature = 0f, float TopP = 1f, int TopK = 0, int? Seed = null)
{
    public bool Greedy => Temperature <= 0f;

    public void Validate()
    {
        if (!float.IsFinite(Temperature) || Temperature < 0) throw new SettingException(Setting.Temperature, "must be 0 (greedy) or a positive finite number", Temperature);
        if (!(TopP > 0 && TopP <= 1)) throw new SettingException(Setting.TopP, "must be in (0, 1]", TopP);
        if (TopK < 0) throw new SettingException(Setting.TopK, "must be 0 (off) or positive", TopK);
    }
}

/// <summary>
/// Greedy, or temperature sampling restricted by top-k and then top-p (nucleus), as Hugging Face applies them
/// (<see cref="TokenPicker"/> says how exactly). Seeded, so a seed gives the same tokens on every run; the random
/// numbers stay here, one a step (<see cref="Draw"/>), and the pick runs where the logits are.
/// </summary>
public sealed class Sampler(SamplingOptions options)
{
    private readonly Random _random = options.Seed is { } s ? new Random(s) : new Random();

    /// <summary>The next step's draw: its settings and, unless greedy, the next of the seeded random numbers.</summary>
    public TokenDraw Draw() => options.Greedy ? TokenDraw.Greedy : new TokenDraw(options.Temperature, options.TopP, options.TopK, _random.NextDouble());

    /// <summary>The next token drawn from logits on the host: what the engine's draw where the logits are must equal.</summary>
    public int Next(ReadOnlySpan<float> logits) => options.Greedy ? ArgMax(logits) : TokenPicker.Pick(logits, Draw());

    /// <summary>
    /// The first index of the largest logit (NaN never wins). The maximum is found with SIMD first (a decode step
    /// scans the whole vocabulary, 128K logits for Llama 3), then the first row equal to it.
    /// </summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        if (logits.Length == 0) return 0;
        float max = TensorPrimitives.Max(logits);
        if (float.IsNaN(max)) return ArgMaxSkippingNaN(logits);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var target = new Vector<float>(max);
            while (i + Vector<float>.Count <= logits.Length && !Vector.EqualsAny(new Vector<float>(logits[i..]), target)) i += Vector<float>.Count;
        }
        while (logits[i] != max) i++;
        return i;
    }

    private static int ArgMaxSkippingNaN(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[best] || float.IsNaN(logits[best])) best = i;
        return best;
    }
}
