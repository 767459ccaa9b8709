using System.Diagnostics;
using LongCtx.ContextParallel;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace LongCtx.Server;

/// <summary>
/// The OpenAI-compatible HTTP server: Kestrel with minimal-API routes over one <see cref="Scheduler"/>, behind
/// <see cref="RequestGuard"/>. Every error leaves as OpenAI's {"error": {...}} object; nothing a client sends can stop
/// the server. Stopping it (SIGTERM, SIGINT, <see cref="DisposeAsync"/>) drains: no new connection is taken, requests in
/// flight finish, and at --shutdown-timeout the rest end with a final chunk (streams) or a 503.
/// </summary>
public sealed class OpenAiServer : IAsyncDisposable
{
    /// <summary>Routes and the methods each answers: a known route asked with another method is a 405, anything else a 404.</summary>
    private static readonly Dictionary<string, string[]> Routes = new()
    {
        ["/v1/completions"] = ["POST"],
        ["/v1/chat/completions"] = ["POST"],
        ["/v1/models"] = ["GET"],
        ["/tokenize"] = ["POST"],
        ["/detokenize"] = ["POST"],
        ["/health"] = ["GET", "HEAD"],
        ["/metrics"] = ["GET"],
    };

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
    /// <summary>Positions of KV the server holds at most (--max-kv-tokens, or what memory holds).</summary>
    public long KvCapacity => _scheduler.KvCapacity;

    public static async Task<OpenAiServer> StartAsync(ServedModel model, ServerOptions options)
    {
        options.Validate();
        // Every request that names no strategy would be refused: the server is misconfigured, not the requests.
        if (options.Strategy == StrategyNames.Dense && model.Engine.Ranks > 1)
            throw new LongCtxException($"--strategy dense runs on one rank; this server has {model.Engine.Ranks}: use pass-kv, pass-q or auto");
        var ip = BindAddress.Resolve(options.Host);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        if (options.LogTo is { } provider) builder.Logging.AddProvider(provider);
        else builder.Logging.AddSimpleConsole(c => { c.SingleLine = true; c.TimestampFormat = "yyyy-MM-dd HH:mm:ss "; });
        builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(c => c.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Logging.SetMinimumLevel(options.LogLevel);
        // The hosting and Kestrel's own lines (started, stopping) are not the operator's news; their warnings are.
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
        // Kestrel waits this long for requests to finish on shutdown; the scheduler ends them all by the drain's deadline.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = options.ShutdownTimeout + TimeSpan.FromSeconds(10));
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = BodyLimit(model, options);
            k.Listen(ip, options.Port);
        });
        var app = builder.Build();
        var log = app.Services.GetRequiredService<ILoggerFactory>();
        var access = log.CreateLogger("LongCtx.Server.Access");

        var metrics = new ServerMetrics();
        var scheduler = new Scheduler(model, options, metrics, log.CreateLogger("LongCtx.Server.Scheduler"));
        app.Lifetime.ApplicationStopping.Register(() => scheduler.BeginDrain(options.ShutdownTimeout));
        var completions = new CompletionEndpoint(model, options, scheduler, metrics);
        var tokenize = new TokenizeEndpoint(model, completions.Reader);
        var guard = new RequestGuard(options, options.Host.Trim('[', ']'));
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        app.Use(async (ctx, next) =>
        {
            long started = Stopwatch.GetTimestamp();
            try
            {
                if (!guard.Check(ctx)) await next(ctx);
            }
            catch (ApiException e) { await WriteError(ctx, e); }
            catch (Exception) when (ctx.RequestAborted.IsCancellationRequested) { } // the client went away
            catch (Exception e) { await WriteError(ctx, ApiException.Internal(e)); }
            string route = RouteLabel(ctx.Request.Path);
            // A client that went away heard no status; nginx's 499 says so.
            int status = ctx.RequestAborted.IsCancellationRequested ? 499 : ctx.Items[AccessLog.StatusItem] as int? ?? ctx.Response.StatusCode;
            metrics.Request(route, status);
            AccessLog.Write(access, ctx, route, status, started);
        });
        app.MapPost("/v1/completions", ctx => completions.Handle(ctx, chat: false));
        app.MapPost("/v1/chat/completions", ctx => completions.Handle(ctx, chat: true));
        int maxModelLen = completions.Reader.MaxModelLen;
        app.MapGet("/v1/models", ctx => WriteJson(ctx, Models(model, created, maxModelLen)));
        app.MapGet("/v1/models/{**id}", ctx => ctx.Request.RouteValues["id"] is string id && model.Names.Contains(id)
            ? WriteJson(ctx, ResponseJson.Write(w => ModelObject(w, model, id, created, maxModelLen)))
            : throw new ApiException(404, $"model '{ctx.Request.RouteValues["id"]}' is not served here: use {string.Join(" or ", model.Names.Select(m => $"'{m}'"))}", "model", "model_not_found"));
        app.MapPost("/tokenize", ctx => tokenize.Tokenize(ctx));
        app.MapPost("/detokenize", ctx => tokenize.Detokenize(ctx));
        app.MapMethods("/health", ["GET", "HEAD"], ctx => WriteJson(ctx, ResponseJson.Write(w => w.WriteString("status", "ok"))));
        app.MapGet("/metrics", ctx =>
        {
            ctx.Response.ContentType = "text/plain; version=0.0.4";
            return ctx.Response.WriteAsync(metrics.Render());
        });
        app.MapFallback(ctx => throw (Routes.TryGetValue(ctx.Request.Path.Value ?? "", out var methods)
            ? new ApiException(405, $"{ctx.Request.Path} takes {string.Join(" or ", methods)}, not {ctx.Request.Method}") { Headers = new Dictionary<string, string> { ["Allow"] = string.Join(", ", methods) } }
            : new ApiException(404, $"no route {ctx.Request.Method} {ctx.Request.Path}: see /v1/completions, /v1/chat/completions, /v1/models, /tokenize, /detokenize, /health, /metrics")));

        try { await app.StartAsync(); }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            scheduler.Dispose();
            await app.DisposeAsync();
            throw new LongCtxException($"cannot listen on {options.Host}:{options.Port}: {e.Message}");
        }
        if (BindAddress.IsWildcard(ip) && options.ApiKeys.Count == 0)
            ServerLog.OpenToAll(log.CreateLogger("LongCtx.Server"), options.Port);
        return new OpenAiServer(app, scheduler, metrics);
    }

    /// <summary>Completes when the server has stopped: after a SIGTERM or SIGINT, once the drain is done.</summary>
    public Task WaitForShutdownAsync(CancellationToken cancel = default) => _app.WaitForShutdownAsync(cancel);

    /// <summary>Stops taking connections and drains (the class's remarks); returns when every request has ended.</summary>
    public Task StopAsync() => _app.StopAsync();

    /// <summary>Bodies larger than this are refused with 413: room for the longest admitted prompt as a token id array.</summary>
    private static long BodyLimit(ServedModel model, ServerOptions options) =>
        Math.Clamp(32L * (options.MaxPromptTokens ?? options.MaxModelLen ?? model.Engine.Config.MaxPositionEmbeddings), 1L << 20, 1L << 30);

    private static string RouteLabel(PathString path) => path.Value is { } p && Routes.ContainsKey(p) ? p
        : path.StartsWithSegments("/v1/models") ? "/v1/models/{id}" : "other";

    private static byte[] Models(ServedModel model, long created, int maxModelLen) => ResponseJson.Write(w =>
    {
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        foreach (string name in model.Names)
        {
            w.WriteStartObject();
            ModelObject(w, model, name, created, maxModelLen);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    });

    private static void ModelObject(System.Text.Json.Utf8JsonWriter w, ServedModel model, string name, long created, int maxModelLen)
    {
        w.WriteString("id", name);
        w.WriteString("object", "model");
        w.WriteNumber("created", created);
        w.WriteString("owned_by", "longctx");
        w.WriteString("root", model.Id);
        w.WriteNumber("max_model_len", maxModelLen);
        w.WriteNumber("ranks", model.Engine.Ranks);
    }

    internal static async Task WriteJson(HttpContext ctx, byte[] body)
    {
        ctx.Response.ContentType = "application/json";
        if (!HttpMethods.IsHead(ctx.Request.Method)) await ctx.Response.Body.WriteAsync(body);
    }

    private static async Task WriteError(HttpContext ctx, ApiException e)
    {
        if (ctx.Response.HasStarted) return;
        ctx.Response.StatusCode = e.Status;
        foreach (var (name, value) in e.Headers) ctx.Response.Headers[name] = value;
        await WriteJson(ctx, ResponseJson.Error(e));
    }

    public async ValueTask DisposeAsync()
    {
        if (!_app.Lifetime.ApplicationStopped.IsCancellationRequested) await _app.StopAsync();
        _scheduler.Dispose();
        await _app.DisposeAsync();
    }
}
