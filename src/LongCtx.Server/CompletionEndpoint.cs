using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace LongCtx.Server;

/// <summary>
/// POST /v1/completions and /v1/chat/completions: reads the request, enforces the concurrency limit,
/// hands the job to the scheduler and answers with one JSON body or a server-sent event stream.
/// </summary>
internal sealed class CompletionEndpoint(ServedModel model, ServerOptions options, Scheduler scheduler)
{
    private static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();
    private readonly RequestReader _reader = new(model, options);
    private readonly LogprobsJson _logprobs = new(new TokenText(model.Tokenizer));
    private int _inFlight;

    public async Task Handle(HttpContext ctx, bool chat)
    {
        JsonNode? body;
        try { body = await JsonNode.ParseAsync(ctx.Request.Body, cancellationToken: ctx.RequestAborted); }
        catch (JsonException e) { throw ApiException.BadRequest($"the body is not valid JSON: {e.Message}"); }
        catch (BadHttpRequestException e) { throw new ApiException(e.StatusCode, $"bad request body: {e.Message}"); }
        var p = _reader.Read(body, chat);

        if (Interlocked.Increment(ref _inFlight) > options.MaxConcurrent)
        {
            Interlocked.Decrement(ref _inFlight);
            throw new ApiException(429, $"{options.MaxConcurrent} requests are already in flight (--max-concurrent): retry later", code: "rate_limit_exceeded");
        }
        var job = new GenerationJob(p);
        try
        {
            using var _ = ctx.RequestAborted.Register(job.Cancel);
            scheduler.Submit(job);
            var json = new ResponseJson((chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N"), model.Id, chat, _logprobs);
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
                    ctx.Response.ContentType = "application/json";
                    await ctx.Response.Body.WriteAsync(json.Complete(text.ToString(), logprobs, done), ctx.RequestAborted);
                    return;
            }
        }
    }

    private static async Task Stream(HttpContext ctx, GenerationJob job, ResponseJson json)
    {
        var p = job.Params;
        bool started = false;
        async Task Send(byte[] data)
        {
            if (!started)
            {
                ctx.Response.ContentType = "text/event-stream";
                ctx.Response.Headers.CacheControl = "no-cache";
                started = true;
            }
            await ctx.Response.Body.WriteAsync("data: "u8.ToArray(), ctx.RequestAborted);
            await ctx.Response.Body.WriteAsync(data, ctx.RequestAborted);
            await ctx.Response.Body.WriteAsync("\n\n"u8.ToArray(), ctx.RequestAborted);
            await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
        }

        if (p.Chat) await Send(json.Chunk("", role: true, usageField: p.IncludeUsage));
        await foreach (var e in job.Events.ReadAllAsync(ctx.RequestAborted))
        {
            switch (e)
            {
                case TextEvent t: await Send(json.Chunk(t.Text, t.Logprobs, usageField: p.IncludeUsage)); break;
                case FailedEvent f when !started: throw f.Error;
                case FailedEvent f: await Send(ResponseJson.Error(f.Error)); break;
                case FinishedEvent done:
                    await Send(json.Chunk(p.Chat ? null : "", done: done, usageField: p.IncludeUsage));
                    if (p.IncludeUsage) await Send(json.UsageChunk(done.Usage));
                    break;
            }
        }
        await ctx.Response.Body.WriteAsync(Done, ctx.RequestAborted);
    }
}
