namespace LongCtx.Sampling;

/// <summary>
/// One request's <see cref="LogitAdjustment"/> as its output grows: the logit bias, the prompt's tokens (for the
/// repetition penalty) and the output's counts. Null (<see cref="For"/>) for a request that adjusts nothing.
/// </summary>
public sealed class TokenPenalties
{
    private readonly Dictionary<int, int> _entry = [];
    private readonly List<int> _tokens = [], _counts = [];
    private readonly List<float> _bias = [];
    private readonly List<bool> _seen = [];
    private readonly bool _penalizesOutput;
    private readonly LogitAdjustment _current;

    private TokenPenalties(SamplingOptions options, IReadOnlyList<int> prompt)
    {
        _current = new(_tokens, _bias, _counts, _seen, options.RepetitionPenalty, options.FrequencyPenalty, options.PresencePenalty);
        _penalizesOutput = options.RepetitionPenalty != 1f || options.FrequencyPenalty != 0f || options.PresencePenalty != 0f;
        foreach (var (token, bias) in options.LogitBias ?? new Dictionary<int, float>()) Entry(token, bias);
        if (options.RepetitionPenalty != 1f)
            foreach (int token in prompt) _seen[Entry(token)] = true;
    }

    /// <summary>The tracker for a request with these options and prompt; null when they adjust nothing.</summary>
    public static TokenPenalties? For(SamplingOptions options, IReadOnlyList<int> prompt) =>
        options.AdjustsLogits ? new TokenPenalties(options, prompt) : null;

    /// <summary>A token the request drew: it counts for the penalties of the later draws.</summary>
    public void Observe(int token)
    {
        if (!_penalizesOutput) return;
        int i = Entry(token);
        _counts[i]++;
        _seen[i] = true;
    }

    /// <summary>
    /// The adjustment of the next draw: a live view of the request's lists, not a copy, since a draw is used before the
    /// token it draws is observed.
    /// </summary>
    public LogitAdjustment Current() => _current;

    private int Entry(int token, float bias = 0f)
    {
        if (_entry.TryGetValue(token, out int i)) return i;
        _entry[token] = i = _tokens.Count;
        _tokens.Add(token);
        _bias.Add(bias);
        _counts.Add(0);
        _seen.Add(false);
        return i;
    }
}
