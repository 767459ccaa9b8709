using System.Diagnostics;
using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace LongCtx.Server;

/// <summary>
/// One line per request on the "LongCtx.Server.Access" log: its id, method and route, status (499: the client went away
/// first), the prompt's, cached and generated tokens, the time to its first token and its whole time.
/// </summary>
internal static class AccessLog
{
    /// <summary>HttpContext.Items keys the endpoints fill: the job, its usage, and the status of an error sent inside a stream.</summary>
    public const string JobItem = "longctx.job", UsageItem = "longctx.usage", StatusItem = "longctx.status";

    public static void Write(ILogger log, HttpContext ctx, string route, int status, long startedAt)
    {
        if (!log.IsEnabled(LogLevel.Information)) return;
        var job = ctx.Items[JobItem] as GenerationJob;
        var usage = ctx.Items[UsageItem] as Usage;
        string id = job?.Id ?? ctx.TraceIdentifier;
        string prompt = Count(usage?.PromptTokens ?? job?.Params.PromptTokens.Length), cached = Count(usage?.CachedTokens), generated = Count(usage?.CompletionTokens);
        string ttft = job?.TimeToFirstToken is { } t ? t.ToString("0.000", CultureInfo.InvariantCulture) : "-";
        string e2e = Stopwatch.GetElapsedTime(startedAt).TotalSeconds.ToString("0.000", CultureInfo.InvariantCulture);
        ServerLog.Access(log, id, ctx.Request.Method, route, status, prompt, cached, generated, ttft, e2e);
    }

    private static string Count(int? n) => n?.ToString(CultureInfo.InvariantCulture) ?? "-";
}
