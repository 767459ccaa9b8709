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

    /// <summary>OpenAI's error type for the status.</summary>
    public string Type => Status switch
    {
        404 => "not_found_error",
        413 or 400 => "invalid_request_error",
        429 => "rate_limit_error",
        503 => "service_unavailable_error",
        _ => "server_error",
    };

    public static ApiException BadRequest(string message, string? param = null, string? code = null) => new(400, message, param, code);
}
