namespace LongCtx.Sampling;

/// <summary>
/// What one draw changes in its row of logits before it picks, as vLLM's sampler does: the logit bias first, then the
/// repetition penalty on every token of the prompt or the output (a positive logit divided by it, a negative one
/// multiplied), then the frequency penalty times the token's count in the output and the presence penalty once for a
/// token the output holds. Only the tokens it touches are listed. Each step is one float operation rounded to float,
/// in this order, wherever the draw runs: the host on its floats (<see cref="ApplyTo"/>), the GPU on a copy of the bf16
/// row (Kernels/adjust_logits.cu, the result rounded to bf16 as every logit there is). Logprobs stay those of the raw
/// logits (vLLM's default).
/// </summary>
/// <param name="Tokens">the tokens touched, each once</param>
/// <param name="Bias">each token's logit bias (0: none)</param>
/// <param name="OutputCounts">how often each token is in the output so far</param>
/// <param name="Seen">whether each token is in the prompt or the output (the repetition penalty's tokens)</param>
public sealed record LogitAdjustment(IReadOnlyList<int> Tokens, IReadOnlyList<float> Bias, IReadOnlyList<int> OutputCounts, IReadOnlyList<bool> Seen,
    float Repetition, float Frequency, float Presence)
{
    /// <summary>Entry <paramref name="i"/>'s token's logit <paramref name="x"/> after the adjustment.</summary>
    public float Adjust(float x, int i)
    {
        x += Bias[i];
        if (Seen[i]) x = x > 0 ? x / Repetition : x * Repetition;
        int count = OutputCounts[i];
        x -= Frequency * count;
        x -= count > 0 ? Presence : 0f;
        return x;
    }

    /// <summary>Adjusts a row of logits in place.</summary>
    public void ApplyTo(Span<float> row)
    {
        for (int i = 0; i < Tokens.Count; i++)
        {
            int token = Tokens[i];
            if ((uint)token >= (uint)row.Length) throw new SettingException(Setting.LogitBias, $"names token {token}, outside the vocabulary of {row.Length}");
            row[token] = Adjust(row[token], i);
        }
    }
}
