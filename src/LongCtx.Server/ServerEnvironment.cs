namespace LongCtx.Server;

/// <summary>The environment variables the server reads, in one place: LONGCTX_API_KEY, the API key when no --api-key is given.</summary>
public static class ServerEnvironment
{
    public const string ApiKeyVariable = "LONGCTX_API_KEY";

    /// <summary>The keys given as flags, else the one in LONGCTX_API_KEY, else none.</summary>
    public static IReadOnlyList<string> ApiKeys(IReadOnlyList<string> flags, Func<string, string?>? read = null)
    {
        if (flags.Count > 0) return flags;
        return (read ?? Environment.GetEnvironmentVariable)(ApiKeyVariable) is { Length: > 0 } key ? [key] : [];
    }
}
