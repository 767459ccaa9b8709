namespace LongCtx.Server;

/// <summary>What the scheduler sends a request's endpoint: text as it is generated, then the end or an error.</summary>
public abstract record JobEvent;

/// <summary>
/// Newly generated text, or the echoed prompt; with logprobs, the entries of the tokens whose text it releases.
/// A token's text can wait for the next token (a piece of a character; a special token has none) or for the stop
/// matcher: its entry goes out with that text, not before. At the end the text may be empty, the entries not
/// (a stop token, the tokens of a stop sequence).
/// </summary>
public sealed record TextEvent(string Text, IReadOnlyList<TokenLogprob>? Logprobs = null) : JobEvent;

public sealed record FinishedEvent(string FinishReason, Usage Usage, IReadOnlyList<int> TokenIds, string Strategy) : JobEvent;

public sealed record FailedEvent(ApiException Error) : JobEvent;

public sealed record Usage(int PromptTokens, int CompletionTokens, int CachedTokens);
