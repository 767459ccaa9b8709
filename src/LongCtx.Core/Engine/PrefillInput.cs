using LongCtx.Approximate;
using LongCtx.ContextParallel;
using LongCtx.Sampling;

namespace LongCtx.Engine;

/// <summary>One sequence of a prefill: its new tokens (against the KV it has cached) and what to bring back for it.</summary>
public sealed record PrefillInput(Sequence Sequence, int[] NewTokens)
{
    /// <summary>Logits of this many last new tokens' rows (at most all of them); 0: none.</summary>
    public int KeepLast { get; init; }

    /// <summary>Draws the token after the last new token where the logits are, as every decode step does.</summary>
    public TokenDraw? Draw { get; init; }

    /// <summary>With <see cref="Draw"/>: the drawn token's logprob and this many most likely tokens.</summary>
    public int? DrawLogprobs { get; init; }

    /// <summary>
    /// The prompt's logprobs: per new token, the token whose logprob its row gives (−1: none; a whole prompt's last row
    /// has none, a piece's last row gives the next piece's first token), and how many most likely tokens a row lists.
    /// </summary>
    public (int[] Next, int Top)? Scoring { get; init; }
}

/// <summary>A token drawn where the logits are, with its logprobs when they were asked for.</summary>
public readonly record struct DrawnToken(int Token, PositionLogprobs? Logprobs);

/// <summary>
/// One prefill's outcome, per sequence in batch order: the logits kept (KeepLast rows, row-major), the token drawn, the
/// prompt's logprobs (entry j: new token j + 1's, at row j) and, when asked, the argmax at every new position; and how
/// attention ran (Blocks: the document/query split of an approximate run).
/// </summary>
public sealed record PrefillResult(IReadOnlyList<float[]> Logits, IReadOnlyList<int[]>? ArgmaxAll, string Strategy, StrategyChoice? Choice, TimeSpan Elapsed,
    ContextBlocks? Blocks = null, IReadOnlyList<PositionLogprobs[]>? PromptLogprobs = null, IReadOnlyList<DrawnToken?>? Drawn = null);
