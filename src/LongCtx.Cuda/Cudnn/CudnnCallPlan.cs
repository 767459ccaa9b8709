namespace LongCtx.Cuda;

/// <summary>
/// How one attention block is cut into cuDNN SDPA calls: causal blocks into row slices of at most
/// <see cref="MaxCausalRows"/> queries (0: one call), the heads into groups of <see cref="KvHeadsPerCall"/> KV
/// heads with their query heads (0: all heads in one call), and which of the engine configurations that
/// finalize runs (<see cref="EngineConfig"/>, heuristics order), and on how many streams the calls of one block
/// run (<see cref="Streams"/>: with two, one call's last partial wave overlaps the next call). Measured on an
/// H200 (docs/PERFORMANCE.md): fewer KV heads per call and the later engine configurations are slower; the
/// best row slice depends on the block's length (<see cref="RowsFor"/>).
/// </summary>
public readonly record struct CudnnCallPlan(int MaxCausalRows, int KvHeadsPerCall, int EngineConfig, int Streams = 1)
{
    /// <summary><see cref="MaxCausalRows"/> value that picks the slice by the block's length (<see cref="RowsFor"/>).</summary>
    public const int AutoRows = -1;

    /// <summary>The environment variable that overrides <see cref="Default"/>, e.g. "rows=8192,kv-heads=1,engine=0".</summary>
    public const string EnvironmentVariable = "LONGCTX_CUDNN_CALLS";

    /// <summary>Row slices by the block's length, all heads per call, the first engine configuration, one stream.</summary>
    public static CudnnCallPlan Default => new(AutoRows, 0, 0);

    /// <summary><see cref="Default"/>, or the plan <see cref="EnvironmentVariable"/> gives.</summary>
    public static CudnnCallPlan FromEnvironment() =>
        Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } text ? Parse(text, EnvironmentVariable) : Default;

    /// <summary>"rows=R|auto,kv-heads=G,engine=E,streams=S", any subset; the rest from <see cref="Default"/>.</summary>
    public static CudnnCallPlan Parse(string text, string source)
    {
        var plan = Default;
        foreach (var item in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = item.Split('=', 2, StringSplitOptions.TrimEntries);
            int value = 0;
            if (parts.Length != 2 || !(parts is [_, "auto"] || int.TryParse(parts[1], out value) && value >= 0))
                throw new LongCtxException($"{source} {text}: '{item}' is not name=value with a value of 0 or more (names: rows, kv-heads, engine, streams; rows may be auto)");
            if (parts[1] == "auto" && parts[0] != "rows") throw new LongCtxException($"{source} {text}: only rows may be auto");
            plan = parts[0] switch
            {
                "rows" => plan with { MaxCausalRows = parts[1] == "auto" ? AutoRows : value },
                "kv-heads" => plan with { KvHeadsPerCall = value },
                "engine" => plan with { EngineConfig = value },
                "streams" when value is 1 or 2 => plan with { Streams = value },
                "streams" => throw new LongCtxException($"{source} {text}: streams must be 1 or 2"),
                _ => throw new LongCtxException($"{source} {text}: '{parts[0]}' is unknown: use rows, kv-heads, engine and/or streams"),
            };
        }
        return plan;
    }

    /// <summary>The KV heads one call covers for a model with <paramref name="kvHeads"/>: all, unless the plan's group divides them.</summary>
    public int KvHeadsFor(int kvHeads) => KvHeadsPerCall > 0 && KvHeadsPerCall < kvHeads && kvHeads % KvHeadsPerCall == 0 ? KvHeadsPerCall : kvHeads;

    /// <summary>
    /// The most rows per call for a causal block of <paramref name="queryRows"/> queries (0: one call). Auto: 16K rows
    /// up to 32K queries, 8K beyond (H200, cuDNN 9.14: 690 vs 655 TFLOP/s at 32K, 580-586 vs 602-607 at 128K).
    /// </summary>
    public int RowsFor(int queryRows) => MaxCausalRows != AutoRows ? MaxCausalRows : queryRows <= 32768 ? 16384 : 8192;

    public override string ToString() =>
        $"rows={(MaxCausalRows == AutoRows ? "auto" : MaxCausalRows)},kv-heads={KvHeadsPerCall},engine={EngineConfig}{(Streams > 1 ? $",streams={Streams}" : "")}";
}
