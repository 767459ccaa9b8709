namespace LongCtx.Cuda;

/// <summary>
/// How one attention block is cut into cuDNN SDPA calls: causal blocks into row slices of at most
/// <see cref="MaxCausalRows"/> queries (0: one call), the heads into groups of <see cref="KvHeadsPerCall"/> KV
/// heads with their query heads (0: all heads in one call), and which of the engine configurations that
/// finalize runs (<see cref="EngineConfig"/>, heuristics order). Long key ranges are where this matters: a
/// call over fewer KV heads keeps the keys its thread blocks stream nearer to L2 (docs/PERFORMANCE.md).
/// </summary>
public readonly record struct CudnnCallPlan(int MaxCausalRows, int KvHeadsPerCall, int EngineConfig)
{
    /// <summary>The environment variable that overrides <see cref="Default"/>, e.g. "rows=8192,kv-heads=1,engine=0".</summary>
    public const string EnvironmentVariable = "LONGCTX_CUDNN_CALLS";

    /// <summary>On an H200, 16K-row causal slices with all heads per call (docs/PERFORMANCE.md, second round).</summary>
    public static CudnnCallPlan Default => new(16384, 0, 0);

    /// <summary><see cref="Default"/>, or the plan <see cref="EnvironmentVariable"/> gives.</summary>
    public static CudnnCallPlan FromEnvironment() =>
        Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } text ? Parse(text, EnvironmentVariable) : Default;

    /// <summary>"rows=R,kv-heads=G,engine=E", any subset; the rest from <see cref="Default"/>.</summary>
    public static CudnnCallPlan Parse(string text, string source)
    {
        var plan = Default;
        foreach (var item in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = item.Split('=', 2, StringSplitOptions.TrimEntries);
            if (parts.Length != 2 || !int.TryParse(parts[1], out int value) || value < 0)
                throw new LongCtxException($"{source} {text}: '{item}' is not name=value with a value of 0 or more (names: rows, kv-heads, engine)");
            plan = parts[0] switch
            {
                "rows" => plan with { MaxCausalRows = value },
                "kv-heads" => plan with { KvHeadsPerCall = value },
                "engine" => plan with { EngineConfig = value },
                _ => throw new LongCtxException($"{source} {text}: '{parts[0]}' is unknown: use rows, kv-heads and/or engine"),
            };
        }
        return plan;
    }

    /// <summary>The KV heads one call covers for a model with <paramref name="kvHeads"/>: all, unless the plan's group divides them.</summary>
    public int KvHeadsFor(int kvHeads) => KvHeadsPerCall > 0 && KvHeadsPerCall < kvHeads && kvHeads % KvHeadsPerCall == 0 ? KvHeadsPerCall : kvHeads;

    public override string ToString() => $"rows={MaxCausalRows},kv-heads={KvHeadsPerCall},engine={EngineConfig}";
}
