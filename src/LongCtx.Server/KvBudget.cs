using LongCtx.Engine;

namespace LongCtx.Server;

/// <summary>
/// The bound on KV memory: positions of KV the server holds at most, over every request in the engine (each counted at
/// its prompt plus its max_tokens, what it may grow to) and every kept conversation. The scheduler admits a request
/// only when it fits beside what is held, releasing kept conversations first, least recently used; otherwise it waits
/// in the queue. Memory runs short in the queue, never in the middle of a prefill or a decode step.
/// </summary>
internal static class KvBudget
{
    /// <summary>Share of the memory left after loading that KV may take.</summary>
    private const double MemoryShare = 0.9;
    /// <summary>A cache grows by copying into a larger buffer (ContextParallel.SequenceKv), an eighth more each time.</summary>
    private const double Growth = 1.25;

    /// <summary>--max-kv-tokens, else what the ranks' memory holds after a step's activations.</summary>
    public static long Capacity(InferenceEngine engine, ServerOptions options)
    {
        if (options.MaxKvTokens is { } given) return given;
        var c = engine.Config;
        // The largest step's activations, float32 (the most any backend uses): residual, norms, q/k/v/o, and the MLP.
        long activations = (long)options.MaxBatchTokens * (6L * c.HiddenSize + 3L * c.IntermediateSize) * sizeof(float);
        double free = engine.AvailableMemoryBytes() * MemoryShare - activations;
        long capacity = (long)(engine.Ranks * free / (engine.KvBytesPerToken() * Growth));
        return capacity >= 1 ? capacity
            : throw new LongCtxException($"no memory is left for KV after the model and a step of --max-num-batched-tokens {options.MaxBatchTokens}: lower it, use more ranks, or give --max-kv-tokens");
    }
}
