namespace LongCtx.Cuda.Attention;

/// <summary>
/// How one attention block is cut into cuDNN SDPA calls: causal blocks into row slices of at most
/// <see cref="MaxCausalRows"/> queries (0: one call), and which of the engine configurations that finalize runs
/// (<see cref="EngineConfig"/>, heuristics order). The best row slice depends on the block's length
/// (<see cref="RowsFor"/>); the later engine configurations are much slower. <see cref="CudaSettings.CudnnCallsVariable"/>
/// overrides the default. Calls over fewer KV heads, a second stream for every other call, and causal slices split
/// into an unmasked rectangle and a causal square merged by log-sum-exp were all slower, and are gone.
/// </summary>
public readonly record struct CudnnCallPlan(int MaxCausalRows, int EngineConfig)
{
    /// <summary><see cref="MaxCausalRows"/> value that picks the slice by the block's length (<see cref="RowsFor"/>).</summary>
    public const int AutoRows = -1;

    /// <summary>Row slices by the block's length, the first engine configuration.</summary>
    public static CudnnCallPlan Default => new(AutoRows, 0);

    /// <summary>"rows=R|auto,engine=E", either or both; the rest from <see cref="Default"/>.</summary>
    /// <param name="variable">the environment variable the text comes from; null: the cuDNN call plan setting</param>
    public static CudnnCallPlan Parse(string text, string? variable = null)
    {
        LongCtxException Refused(string problem) =>
            variable is null ? new SettingException(Setting.CudnnCalls, $": {problem}", text) : new LongCtxException($"{variable} {text}: {problem}");
        var plan = Default;
        foreach (var item in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = item.Split('=', 2, StringSplitOptions.TrimEntries);
            int value = 0;
            if (parts.Length != 2 || !(parts is [_, "auto"] || int.TryParse(parts[1], out value) && value >= 0))
                throw Refused($"'{item}' is not name=value with a value of 0 or more (names: rows, engine; rows may be auto)");
            if (parts[1] == "auto" && parts[0] != "rows") throw Refused("only rows may be auto");
            plan = parts[0] switch
            {
                "rows" => plan with { MaxCausalRows = parts[1] == "auto" ? AutoRows : value },
                "engine" => plan with { EngineConfig = value },
                _ => throw Refused($"'{parts[0]}' is unknown: use rows and/or engine"),
            };
        }
        return plan;
    }

    /// <summary>
    /// The most rows per call for a causal block of <paramref name="queryRows"/> queries (0: one call). Auto: 16K rows
    /// up to 32K queries, 8K beyond, the fastest slices at those lengths.
    /// </summary>
    public int RowsFor(int queryRows) => MaxCausalRows != AutoRows ? MaxCausalRows : queryRows <= 32768 ? 16384 : 8192;

    public override string ToString() =>
        $"rows={(MaxCausalRows == AutoRows ? "auto" : MaxCausalRows)},engine={EngineConfig}";
}
