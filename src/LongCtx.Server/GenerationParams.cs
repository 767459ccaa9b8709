using LongCtx.Approximate;
using LongCtx.Sampling;

namespace LongCtx.Server;

/// <summary>A validated completion or chat request, as the scheduler runs it and the endpoint answers it.</summary>
public sealed record GenerationParams
{
    public required bool Chat { get; init; }
    public required int[] PromptTokens { get; init; }
    public required int MaxTokens { get; init; }
    public required SamplingOptions Sampling { get; init; }
    public required string Strategy { get; init; }
    /// <summary>
    /// Set when the prefill is approximate (star, apb, or auto allowed to pick apb): the engine runs it as a
    /// conversation's first turn, one sequence alone, so the scheduler neither batches it nor reuses or keeps its KV.
    /// </summary>
    public ApproximateOptions? Approximate { get; init; }
    public IReadOnlyList<string> Stop { get; init; } = [];
    /// <summary>Logprobs of each token with this many most likely tokens (completions' logprobs, chat's top_logprobs); null: none.</summary>
    public int? Logprobs { get; init; }
    /// <summary>Completions' echo: the prompt's text, which the choice's text starts with; null: no echo.</summary>
    public string? EchoText { get; init; }
    /// <summary>Echo with logprobs: the prompt's tokens get logprobs too, so its prefill keeps the logits of every position.</summary>
    public bool PromptLogprobs => EchoText is not null && Logprobs is not null;
    public bool Stream { get; init; }
    public bool IncludeUsage { get; init; }
    /// <summary>
    /// Whose kept conversations and replies the request may reuse: its API key's and its cache_salt's (vLLM's field).
    /// Requests of different partitions never share cached KV.
    /// </summary>
    public string Partition { get; init; } = "";

    /// <summary>Positions of KV the request may hold at most: its whole prompt and every token it may generate.</summary>
    public long KvTokens => (long)PromptTokens.Length + MaxTokens;
}
