using Microsoft.Extensions.Logging;

namespace LongCtx.Server;

/// <summary>The server's log lines, compiled once (LoggerMessage): the access log's, the scheduler's and the startup warning.</summary>
internal static partial class ServerLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "{RequestId} {Method} {Route} {Status} prompt={Prompt} cached={Cached} generated={Generated} ttft={Ttft} e2e={E2e}")]
    public static partial void Access(ILogger log, string requestId, string method, string route, int status, string prompt, string cached, string generated, string ttft, string e2e);

    [LoggerMessage(EventId = 2, Level = LogLevel.Debug, Message = "step: {Decoded} decoded in {DecodeMs} ms, {Prefills} prefill call(s) [{Chunks}], {Queued} queued")]
    public static partial void Step(ILogger log, int decoded, string decodeMs, int prefills, string chunks, int queued);

    [LoggerMessage(EventId = 3, Level = LogLevel.Error, Message = "a scheduler step failed; the requests in the engine are failed")]
    public static partial void StepFailed(ILogger log, Exception error);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "listening on every interface without --api-key: anyone who can reach port {Port} can use the model")]
    public static partial void OpenToAll(ILogger log, int port);
}
