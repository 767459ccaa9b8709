using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace LongCtx.Server;

/// <summary>
/// The OpenAI-compatible HTTP server: Kestrel with minimal-API routes over one <see cref="Scheduler"/>.
/// Every error leaves as OpenAI's {"error": {...}} object; nothing a client sends can stop the server.
/// </summary>
public sealed class OpenAiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Scheduler _scheduler;

    private OpenAiServer(WebApplication app, Scheduler scheduler, ServerMetrics metrics)
    {
        _app = app;
        _scheduler = scheduler;
        Metrics = metrics;
    }

    public ServerMetrics Metrics { get; }
    /// <summary>The address it listens on, with the port it got when asked for port 0.</summary>
    public Uri Address => new(_app.Urls.First());

    public static async Task<OpenAiServer> StartAsync(ServedModel model, ServerOptions options)
    {
        options.Validate();
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://{options.Host}:{options.Port}");
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = BodyLimit(model, options));
        var app = builder.Build();

        var metrics = new ServerMetrics();
        var scheduler = new Scheduler(model, options, metrics);
        var completions = new CompletionEndpoint(model, options, scheduler);
        app.Use(async (ctx, next) =>
        {
            try { await next(ctx); }
            catch (ApiException e) { await WriteError(ctx, e); }
            catch (Exception) when (ctx.RequestAborted.IsCancellationRequested) { } // the client went away
            catch (Exception e) { await WriteError(ctx, ApiException.Internal(e)); }
            metrics.Request(RouteLabel(ctx.Request.Path), ctx.Response.StatusCode);
        });
        app.MapPost("/v1/completions", ctx => completions.Handle(ctx, chat: false));
        app.MapPost("/v1/chat/completions", ctx => completions.Handle(ctx, chat: true));
        app.MapGet("/v1/models", ctx => WriteJson(ctx, Models(model)));
        app.MapGet("/health", ctx => WriteJson(ctx, ResponseJson.Write(w => w.WriteString("status", "ok"))));
        app.MapGet("/metrics", ctx =>
        {
            ctx.Response.ContentType = "text/plain; version=0.0.4";
            return ctx.Response.WriteAsync(metrics.Render());
        });
        app.MapFallback(ctx => throw new ApiException(404, $"no route {ctx.Request.Method} {ctx.Request.Path}: see /v1/completions, /v1/chat/completions, /v1/models, /health, /metrics"));

        try { await app.StartAsync(); }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            scheduler.Dispose();
            await app.DisposeAsync();
            throw new LongCtxException($"cannot listen on {options.Host}:{options.Port}: {e.Message}");
        }
        return new OpenAiServer(app, scheduler, metrics);
    }

    public Task WaitForShutdownAsync(CancellationToken cancel = default) => _app.WaitForShutdownAsync(cancel);

    /// <summary>Bodies larger than this are refused with 413: room for the longest admitted prompt as a token id array.</summary>
    private static long BodyLimit(ServedModel model, ServerOptions options) =>
        Math.Clamp(32L * (options.MaxPromptTokens ?? model.Engine.Config.MaxPositionEmbeddings), 1L << 20, 1L << 30);

    private static string RouteLabel(PathString path) => path.Value switch
    {
        "/v1/completions" or "/v1/chat/completions" or "/v1/models" or "/health" or "/metrics" => path.Value,
        _ => "other",
    };

    private static byte[] Models(ServedModel model) => ResponseJson.Write(w =>
    {
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        w.WriteStartObject();
        w.WriteString("id", model.Id);
        w.WriteString("object", "model");
        w.WriteNumber("created", 0);
        w.WriteString("owned_by", "longctx");
        w.WriteNumber("max_model_len", model.Engine.Config.MaxPositionEmbeddings);
        w.WriteNumber("ranks", model.Engine.Ranks);
        w.WriteEndObject();
        w.WriteEndArray();
    });

    private static async Task WriteJson(HttpContext ctx, byte[] body)
    {
        ctx.Response.ContentType = "application/json";
        await ctx.Response.Body.WriteAsync(body);
    }

    private static async Task WriteError(HttpContext ctx, ApiException e)
    {
        if (ctx.Response.HasStarted) return;
        ctx.Response.StatusCode = e.Status;
        await WriteJson(ctx, ResponseJson.Error(e));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        _scheduler.Dispose();
        await _app.DisposeAsync();
    }
}
