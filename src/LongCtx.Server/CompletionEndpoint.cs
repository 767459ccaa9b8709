using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace LongCtx.Server;

/// <summary>
/// POST /v1/completions and /v1/chat/completions: reads the request, bounds what is in flight (--max-concurrent in the
/// engine and --max-waiting queued; beyond, 429 with Retry-After), hands the job to the scheduler and answers with one
/// JSON body or a server-sent event stream, which sends a comment while it has nothing else to send (a long prefill,
/// the queue) so that proxies keep the connection.
/// </summary>
internal sealed class CompletionEndpoint(ServedModel model, ServerOptions options, Scheduler scheduler, ServerMetrics metrics)
{
    private static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray(), KeepAlive = ": keep-alive\n\n"u8.ToArray();
    private readonly RequestReader _reader = new(model, options);
    private readonly LogprobsJson _logprobs = new(new TokenText(model.Tokenizer));
    private int _inFlight;

    public RequestReader Reader => _reader;

    public async Task Handle(HttpContext ctx, bool chat)
    {
        var p = _reader.Read(await RequestBody.Read(ctx), chat, RequestGuard.KeyPartition(ctx));

        if (Interlocked.Increment(ref _inFlight) > options.MaxConcurrent + options.MaxWaiting)
        {
            Interlocked.Decrement(ref _inFlight);
            int retry = (int)Math.Clamp(Math.Ceiling(metrics.RecentRequestSeconds), 1, 600);
            throw new ApiException(429, $"{options.MaxConcurrent} requests are running and {options.MaxWaiting} waiting (--max-concurrent, --max-waiting): retry in {retry} s",
                code: "rate_limit_exceeded")
            {
                Headers = new Dictionary<string, string> { ["Retry-After"] = retry.ToString(CultureInfo.InvariantCulture) },
            };
        }
        var job = new GenerationJob(p, (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N"));
        ctx.Items[AccessLog.JobItem] = job;
        try
        {
            using var _ = ctx.RequestAborted.Register(job.Cancel);
            scheduler.Submit(job);
            var json = new ResponseJson(job.Id, model.Id, chat, _logprobs);
            if (p.Stream) await Stream(ctx, job, json);
            else await Whole(ctx, job, json);
        }
        finally
        {
            // Whatever ended the response (done, error, client gone), the scheduler may drop the job.
            job.Cancel();
            Interlocked.Decrement(ref _inFlight);
        }
    }

    private static async Task Whole(HttpContext ctx, GenerationJob job, ResponseJson json)
    {
        var text = new StringBuilder();
        var logprobs = job.Params.Logprobs is null ? null : new List<TokenLogprob>();
        await foreach (var e in job.Events.ReadAllAsync(ctx.RequestAborted))
        {
            switch (e)
            {
                case TextEvent t:
                    text.Append(t.Text);
                    logprobs?.AddRange(t.Logprobs ?? []);
                    break;
                case FailedEvent f: throw f.Error;
                case FinishedEvent done:
                    ctx.Items[AccessLog.UsageItem] = done.Usage;
                    ctx.Response.ContentType = "application/json";
                    await ctx.Response.Body.WriteAsync(json.Complete(text.ToString(), logprobs, done), ctx.RequestAborted);
                    return;
            }
        }
    }

    private async Task Stream(HttpContext ctx, GenerationJob job, ResponseJson json)
    {
        var p = job.Params;
        var response = ctx.Response;
        bool started = false;
        async Task Write(byte[] bytes, bool data)
        {
            if (!started)
            {
                response.ContentType = "text/event-stream";
                response.Headers.CacheControl = "no-cache";
                started = true;
            }
            if (data) await response.Body.WriteAsync("data: "u8.ToArray(), ctx.RequestAborted);
            await response.Body.WriteAsync(bytes, ctx.RequestAborted);
            if (data) await response.Body.WriteAsync("\n\n"u8.ToArray(), ctx.RequestAborted);
            await response.Body.FlushAsync(ctx.RequestAborted);
        }

        if (p.Chat) await Write(json.Chunk("", role: true, usageField: p.IncludeUsage), data: true);
        var events = job.Events;
        while (true)
        {
            // Nothing to send for a while (the queue, a long prefill): a comment keeps the connection alive. The first one
            // commits the stream, so an error found at once (at admission) still gets its status.
            var ready = events.WaitToReadAsync(ctx.RequestAborted).AsTask();
            while (!ready.IsCompleted)
            {
                try { await ready.WaitAsync(options.KeepAliveInterval, ctx.RequestAborted); }
                catch (TimeoutException) { await Write(KeepAlive, data: false); }
            }
            if (!await ready) break;
            while (events.TryRead(out var e))
            {
                switch (e)
                {
                    case TextEvent t: await Write(json.Chunk(t.Text, t.Logprobs, usageField: p.IncludeUsage), data: true); break;
                    case FailedEvent f when !started: throw f.Error;
                    case FailedEvent f:
                        ctx.Items[AccessLog.StatusItem] = f.Error.Status;
                        await Write(ResponseJson.Error(f.Error), data: true);
                        break;
                    case FinishedEvent done:
                        ctx.Items[AccessLog.UsageItem] = done.Usage;
                        await Write(json.Chunk(p.Chat ? null : "", done: done, usageField: p.IncludeUsage), data: true);
                        if (p.IncludeUsage) await Write(json.UsageChunk(done.Usage), data: true);
                        break;
                }
            }
        }
        await response.Body.WriteAsync(Done, ctx.RequestAborted);
    }
}
