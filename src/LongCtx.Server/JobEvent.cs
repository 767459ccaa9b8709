namespace LongCtx.Server;

/// <summary>What the scheduler sends a request's endpoint: text as it is generated, then the end or an error.</summary>
public abstract record JobEvent;

/// <summary>Newly generated text (may be empty while a multi-byte character or a stop sequence is pending).</summary>
public sealed record TextEvent(string Text) : JobEvent;

public sealed record FinishedEvent(string FinishReason, Usage Usage, IReadOnlyList<int> TokenIds, string Strategy) : JobEvent;

public sealed record FailedEvent(ApiException Error) : JobEvent;

public sealed record Usage(int PromptTokens, int CompletionTokens, int CachedTokens);
