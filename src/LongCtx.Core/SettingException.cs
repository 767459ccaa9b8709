namespace LongCtx;

/// <summary>
/// The settings a front end exposes, each under its own name (a command-line flag, a request field): an error about one
/// carries it, so the front end can say which of its names to use.
/// </summary>
public enum Setting
{
    Device,
    Gpus,
    Ranks,
    TensorParallel,
    PrefillChunk,
    Attention,
    CudnnCalls,
    Strategy,
    /// <summary>The approximate strategies' query (the prompt's last tokens).</summary>
    Query,
    Temperature,
    TopP,
    TopK,
    MaxNewTokens,
    Logprobs,
    /// <summary>The planner's settings: context lengths, the share already cached, a built-in device profile, a calibration file, weights' type, the link between nodes, devices a node.</summary>
    Context,
    HitRate,
    Gpu,
    Calibration,
    Dtype,
    Link,
    GpusPerNode,
    /// <summary>Online quantisation of a float checkpoint's projections (fp8).</summary>
    Quantization,
    KvCacheDtype,
    AttentionDtype,
    PresencePenalty,
    FrequencyPenalty,
    RepetitionPenalty,
    LogitBias,
    /// <summary>CPU threads in all.</summary>
    Threads,
}

/// <summary>
/// A setting's value the engine cannot use: <see cref="Problem"/> says what is wrong and what would do, after the
/// setting and its <see cref="Value"/> (a setting that is missing or needed has no value). The message names the setting
/// neutrally ("ranks 80 is out of range: use 1 to 64"); front ends put their own name for it in its place.
/// </summary>
public sealed class SettingException(Setting setting, string problem, object? value = null)
    : LongCtxException(Compose(NameOf(setting), value, problem))
{
    public Setting Setting { get; } = setting;
    public object? Value { get; } = value;
    public string Problem { get; } = problem;

    /// <summary>The message with <paramref name="name"/> for the setting: "NAME VALUE PROBLEM", or the problem alone without a value.</summary>
    public string Naming(string name) => Compose(name, Value, Problem);

    /// <summary>The setting's own name, as the messages of Core and Cuda use it: TensorParallel is "tensor-parallel".</summary>
    public static string NameOf(Setting setting) =>
        string.Concat(setting.ToString().Select((c, i) => i > 0 && char.IsUpper(c) ? $"-{char.ToLowerInvariant(c)}" : $"{char.ToLowerInvariant(c)}"));

    private static string Compose(string name, object? value, string problem) =>
        value is null ? problem : $"{name} {value}{(problem.Length > 0 && problem[0] is ':' or ';' or ',' ? "" : " ")}{problem}";
}

/// <summary>A prompt (with what a sequence has cached) longer than the model's context window.</summary>
public sealed class ContextLengthException(long needed, int allowed)
    : LongCtxException($"the prompt needs {needed} positions; the model allows {allowed} (max_position_embeddings in config.json)")
{
    public long Needed { get; } = needed;
    public int Allowed { get; } = allowed;
}
