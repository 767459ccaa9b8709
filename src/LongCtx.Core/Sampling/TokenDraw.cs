namespace LongCtx.Sampling;

/// <summary>
/// One draw of a next token: the sampling settings and the uniform number U in [0, 1) the draw consumes. A
/// <see cref="Sampler"/> makes one a step (its seeded random numbers stay on the host), and the backend that holds
/// the logits picks the token by <see cref="TokenPicker.Pick"/>, so only the token comes back from a GPU.
/// </summary>
public readonly record struct TokenDraw(float Temperature, float TopP, int TopK, double U)
{
    /// <summary>The most likely token (<see cref="Sampler.ArgMax"/>); draws nothing.</summary>
    public static TokenDraw Greedy => new(0f, 1f, 0, 0);

    public bool IsGreedy => Temperature <= 0f;

    /// <summary>The logits this draw changes before it picks (penalties, logit bias); null: none.</summary>
    public LogitAdjustment? Adjust { get; init; }

    /// <summary>The top-k a pick applies: 1 when greedy, 0 for off.</summary>
    public int EffectiveTopK => IsGreedy ? 1 : TopK;

    /// <summary>
    /// The factor that turns a logit's distance below the largest into a power of 2: weight = 2^((x − max) ·
    /// this) = e^((x − max) / T). Computed once in double and rounded, so the host and the GPU use the same float.
    /// </summary>
    public float Log2Scale => IsGreedy ? 0f : (float)(1.4426950408889634 / Temperature);
}
