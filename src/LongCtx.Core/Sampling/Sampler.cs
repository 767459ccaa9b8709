using System.Numerics;
using System.Numerics.Tensors;

namespace LongCtx.Sampling;

/// <summary>
/// How the next token is drawn from the logits: greedy or at a temperature with top-k and top-p, after the logit bias
/// and the penalties (<see cref="LogitAdjustment"/>) change the logits of the tokens they name.
/// </summary>
public sealed record SamplingOptions(float Temperature = 0f, float TopP = 1f, int TopK = 0, int? Seed = null)
{
    /// <summary>OpenAI's bounds on the presence and frequency penalties and on a logit bias.</summary>
    public const float MaxPenalty = 2f, MaxBias = 100f;

    /// <summary>Subtracted once from the logit of every token the output holds (OpenAI's presence_penalty, -2 to 2).</summary>
    public float PresencePenalty { get; init; }
    /// <summary>Subtracted from a token's logit once per time the output holds it (OpenAI's frequency_penalty, -2 to 2).</summary>
    public float FrequencyPenalty { get; init; }
    /// <summary>Divides the positive logits, multiplies the negative ones, of the prompt's and the output's tokens (vLLM's and Hugging Face's; 1: off).</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    /// <summary>Added to the logits of the tokens named (OpenAI's logit_bias, -100 to 100 each).</summary>
    public IReadOnlyDictionary<int, float>? LogitBias { get; init; }

    public bool Greedy => Temperature <= 0f;

    /// <summary>Whether a draw changes any logit before it picks.</summary>
    public bool AdjustsLogits => PresencePenalty != 0f || FrequencyPenalty != 0f || RepetitionPenalty != 1f || LogitBias is { Count: > 0 };

    public void Validate()
    {
        if (!float.IsFinite(Temperature) || Temperature < 0) throw new SettingException(Setting.Temperature, "must be 0 (greedy) or a positive finite number", Temperature);
        if (!(TopP > 0 && TopP <= 1)) throw new SettingException(Setting.TopP, "must be in (0, 1]", TopP);
        if (TopK < 0) throw new SettingException(Setting.TopK, "must be 0 (off) or positive", TopK);
        if (!(Math.Abs(PresencePenalty) <= MaxPenalty)) throw new SettingException(Setting.PresencePenalty, $"must be in [-{MaxPenalty}, {MaxPenalty}]", PresencePenalty);
        if (!(Math.Abs(FrequencyPenalty) <= MaxPenalty)) throw new SettingException(Setting.FrequencyPenalty, $"must be in [-{MaxPenalty}, {MaxPenalty}]", FrequencyPenalty);
        if (!(RepetitionPenalty > 0 && float.IsFinite(RepetitionPenalty))) throw new SettingException(Setting.RepetitionPenalty, "must be positive (1: off)", RepetitionPenalty);
        foreach (var (token, bias) in LogitBias ?? new Dictionary<int, float>())
        {
            if (token < 0) throw new SettingException(Setting.LogitBias, "names a negative token id", token);
            if (!(Math.Abs(bias) <= MaxBias)) throw new SettingException(Setting.LogitBias, $"gives token {token} a bias of {bias}: use -{MaxBias} to {MaxBias}");
        }
    }
}

/// <summary>
/// Greedy, or temperature sampling restricted by top-k and then top-p (nucleus), as Hugging Face applies them
/// (<see cref="TokenPicker"/> says how exactly). Seeded, so a seed gives the same tokens on every run; the random
/// numbers stay here, one a step (<see cref="Draw"/>), and the pick runs where the logits are. With penalties or a
/// logit bias each draw carries its <see cref="LogitAdjustment"/>, from the prompt and the tokens <see cref="Observe"/>d.
/// </summary>
public sealed class Sampler(SamplingOptions options, IReadOnlyList<int>? prompt = null)
{
    private readonly Random _random = options.Seed is { } s ? new Random(s) : new Random();
    private readonly TokenPenalties? _penalties = TokenPenalties.For(options, prompt ?? []);

    /// <summary>The next step's draw: its settings, its adjustment of the logits and, unless greedy, the next of the seeded random numbers.</summary>
    public TokenDraw Draw()
    {
        var draw = options.Greedy ? TokenDraw.Greedy : new TokenDraw(options.Temperature, options.TopP, options.TopK, _random.NextDouble());
        return draw with { Adjust = _penalties?.Current() };
    }

    /// <summary>A token drawn for this request: the penalties of the later draws count it.</summary>
    public void Observe(int token) => _penalties?.Observe(token);

    /// <summary>The next token drawn from logits on the host (and observed): what the engine's draw where the logits are must equal.</summary>
    public int Next(ReadOnlySpan<float> logits)
    {
        int token = TokenPicker.Draw(logits, Draw());
        Observe(token);
        return token;
    }

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
