using LongCtx.ContextParallel;

namespace LongCtx.Server;

/// <summary>How the server listens and what it admits.</summary>
public sealed record ServerOptions
{
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0 picks a free port (tests).</summary>
    public int Port { get; init; } = 8000;
    /// <summary>Longest prompt admitted; null: the model's max_position_embeddings.</summary>
    public int? MaxPromptTokens { get; init; }
    /// <summary>Generation requests in flight at once; one more is answered 429.</summary>
    public int MaxConcurrent { get; init; } = 256;
    /// <summary>Prefills of new requests are fused into one engine call while their new tokens fit this total.</summary>
    public int MaxBatchTokens { get; init; } = 16384;
    /// <summary>Strategy of a request that names none in its "longctx" field.</summary>
    public string Strategy { get; init; } = StrategyNames.Auto;
    /// <summary>Finished chat conversations whose KV stays cached for the next turn.</summary>
    public int KeptConversations { get; init; } = 8;

    public void Validate()
    {
        StrategyNames.Validate(Strategy);
        if (Port is < 0 or > 65535) throw new LongCtxException($"--port {Port} must be in 0..65535");
        if (MaxPromptTokens is < 1) throw new LongCtxException("--max-prompt-tokens must be 1 or more");
        if (MaxConcurrent < 1) throw new LongCtxException("--max-concurrent must be 1 or more");
        if (MaxBatchTokens < 1) throw new LongCtxException("--max-batch-tokens must be 1 or more");
    }
}
