using LongCtx.ContextParallel;
using Microsoft.Extensions.Logging;

namespace LongCtx.Server;

/// <summary>How the server listens, whom it answers and what it admits.</summary>
public sealed record ServerOptions
{
    /// <summary>An address of this machine, a name that resolves to one, or 0.0.0.0 / :: for every interface (<see cref="BindAddress"/>).</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0 picks a free port (tests).</summary>
    public int Port { get; init; } = 8000;
    /// <summary>Longest prompt admitted; null: the context window.</summary>
    public int? MaxPromptTokens { get; init; }
    /// <summary>The context window a request's prompt and max_tokens must fit together; null: the model's max_position_embeddings.</summary>
    public int? MaxModelLen { get; init; }
    /// <summary>Requests in the engine at once (vLLM's --max-num-seqs); more wait in the queue.</summary>
    public int MaxConcurrent { get; init; } = 256;
    /// <summary>Requests waiting beyond <see cref="MaxConcurrent"/> (or for KV room); one more is answered 429 with Retry-After.</summary>
    public int MaxWaiting { get; init; } = 256;
    /// <summary>New tokens a step runs (vLLM's --max-num-batched-tokens): one per decoding request, the rest prefill chunks.</summary>
    public int MaxBatchTokens { get; init; } = 8192;
    /// <summary>Tokens of KV the server holds at most, over every request and kept conversation; null: what the ranks' memory holds (<see cref="KvBudget"/>).</summary>
    public long? MaxKvTokens { get; init; }
    /// <summary>Strategy of a request that names none in its "longctx" field.</summary>
    public string Strategy { get; init; } = StrategyNames.Auto;
    /// <summary>Finished chat conversations whose KV stays cached for the next turn.</summary>
    public int KeptConversations { get; init; } = 8;
    /// <summary>Keys a request must bring as "Authorization: Bearer KEY" on /v1/*, /tokenize and /detokenize; none: no authentication.</summary>
    public IReadOnlyList<string> ApiKeys { get; init; } = [];
    /// <summary>Host header values accepted beyond IP addresses, localhost and this machine's name; "*": any (<see cref="RequestGuard"/>).</summary>
    public IReadOnlyList<string> AllowedHosts { get; init; } = [];
    /// <summary>Origins browsers may call from (CORS); none by default; "*": any.</summary>
    public IReadOnlyList<string> AllowedOrigins { get; init; } = [];
    /// <summary>How long a shutdown lets requests in flight finish before it ends them with a final chunk.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>How often a stream that has nothing to send yet (waiting, prefilling) sends an SSE comment.</summary>
    public TimeSpan KeepAliveInterval { get; init; } = TimeSpan.FromSeconds(15);
    /// <summary>Seeds the draws of requests that bring no seed (vLLM's --seed); null: unseeded.</summary>
    public int? Seed { get; init; }
    /// <summary>The access log and the scheduler's log: Information logs every request, Debug every step.</summary>
    public LogLevel LogLevel { get; init; } = LogLevel.Information;
    /// <summary>Where the log goes; null: stderr.</summary>
    public ILoggerProvider? LogTo { get; init; }

    public void Validate()
    {
        StrategyNames.Validate(Strategy);
        if (Port is < 0 or > 65535) throw new LongCtxException($"--port {Port} must be in 0..65535");
        if (MaxPromptTokens is < 1) throw new LongCtxException("--max-prompt-tokens must be 1 or more");
        if (MaxModelLen is < 2) throw new LongCtxException("--max-model-len must be 2 or more (a prompt token and a generated one)");
        if (MaxConcurrent < 1) throw new LongCtxException("--max-concurrent must be 1 or more");
        if (MaxWaiting < 0) throw new LongCtxException("--max-waiting must be 0 or more");
        if (MaxBatchTokens < 1) throw new LongCtxException("--max-num-batched-tokens must be 1 or more");
        if (MaxKvTokens is < 1) throw new LongCtxException("--max-kv-tokens must be 1 or more");
        if (KeptConversations < 0) throw new LongCtxException("--kept-conversations must be 0 or more");
        if (ShutdownTimeout < TimeSpan.Zero) throw new LongCtxException("--shutdown-timeout must be 0 or more seconds");
        if (KeepAliveInterval <= TimeSpan.Zero) throw new ArgumentException("the keep-alive interval must be positive", nameof(KeepAliveInterval));
        if (ApiKeys.Any(string.IsNullOrWhiteSpace)) throw new LongCtxException("--api-key must not be empty");
    }
}
