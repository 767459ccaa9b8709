namespace LongCtx.Server;

/// <summary>
/// A request the server refuses, with the HTTP status and the fields of OpenAI's error object. Thrown
/// while reading a request, caught at the endpoint and written as {"error": {...}}.
/// </summary>
public sealed class ApiException(int status, string message, string? param = null, string? code = null) : Exception(message)
{
    public int Status { get; } = status;
    public string? Param { get; } = param;
    public string? Code { get; } = code;
    /// <summary>Headers the error response carries (Retry-After for a 429, Allow for a 405).</summary>
    public IReadOnlyDictionary<string, string> Headers { get; init; } = new Dictionary<string, string>();

    /// <summary>OpenAI's error type for the status.</summary>
    public string Type => Status switch
    {
        404 => "not_found_error",
        400 or 401 or 405 or 408 or 413 or 415 => "invalid_request_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        503 => "service_unavailable_error",
        _ => "server_error",
    };

    public static ApiException BadRequest(string message, string? param = null, string? code = null) => new(400, message, param, code);

    /// <summary>A failure that is the server's, not the request's.</summary>
    public static ApiException Internal(Exception e) => new(500, $"internal error ({e.GetType().Name}: {e.Message})");

    /// <summary>
    /// What a request is told when the engine refuses it: its input's fault (400; a setting named as the request field
    /// that sets it, a prompt too long for the model as <paramref name="promptParam"/>), or, for anything but the engine's
    /// own errors, the server's (500).
    /// </summary>
    public static ApiException From(Exception e, string promptParam) => e switch
    {
        SettingException s => BadRequest(s.Naming(FieldOf(s.Setting)), FieldOf(s.Setting)),
        ContextLengthException => BadRequest(e.Message, promptParam, "context_length_exceeded"),
        LongCtxException => BadRequest(e.Message),
        _ => Internal(e),
    };

    private static string FieldOf(Setting setting) => setting switch
    {
        Setting.Temperature => "temperature",
        Setting.TopP => "top_p",
        Setting.TopK => "top_k",
        Setting.MaxNewTokens => "max_tokens",
        Setting.Logprobs => "logprobs",
        Setting.PresencePenalty => "presence_penalty",
        Setting.FrequencyPenalty => "frequency_penalty",
        Setting.RepetitionPenalty => "repetition_penalty",
        Setting.LogitBias => "logit_bias",
        Setting.Strategy => "longctx.strategy",
        Setting.Query => "longctx.query_tokens",
        _ => SettingException.NameOf(setting),
    };
}
