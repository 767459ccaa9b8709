using System.Text;
using System.Text.Json;
using LongCtx.Engine;
using LongCtx.Model;
using LongCtx.Server;
using LongCtx.Tests.Engine;
using LongCtx.Tests.Text;
using Microsoft.Extensions.Logging;

namespace LongCtx.Tests.Server;

/// <summary>
/// A real server in this process on a free loopback port, over a fixture model, with an HttpClient for
/// it. Llama 3 fixtures use the fetched Llama 3 tokenizer (and its chat template).
/// </summary>
internal sealed class TestServer : IAsyncDisposable
{
    private readonly ModelWeights _weights;
    private readonly InferenceEngine _engine;

    private TestServer(ReferenceModel reference, ModelWeights weights, InferenceEngine engine, ServedModel model, OpenAiServer server)
    {
        Reference = reference;
        _weights = weights;
        _engine = engine;
        Model = model;
        Server = server;
        Http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromMinutes(2) };
    }

    public ReferenceModel Reference { get; }
    public ServedModel Model { get; }
    public OpenAiServer Server { get; }
    public HttpClient Http { get; }

    /// <summary>Serves <paramref name="reference"/>; <paramref name="templateFile"/> replaces the tokenizer's chat template (--chat-template).</summary>
    public static async Task<TestServer> Start(ReferenceModel reference, int ranks = 1, ServerOptions? options = null, bool chatTemplate = true,
        string? templateFile = null, GenerationConfig? generation = null)
    {
        var (engine, weights) = reference.Open(ranks);
        bool llama = reference == ReferenceModel.TinyLlama3;
        string tokenizerDir = TokenizerFixtures.FetchedDir(llama ? "llama3" : "qwen3");
        var tokenizer = llama ? TokenizerFixtures.Llama3 : TokenizerFixtures.Qwen3;
        var template = chatTemplate ? ChatTemplate.Load(tokenizerDir, templateFile) : null;
        var model = new ServedModel(Path.GetFileName(reference.Directory), engine, tokenizer, template, generation: generation);
        // Quiet unless a test collects the log.
        options ??= new ServerOptions();
        var server = await OpenAiServer.StartAsync(model, options with { Host = "127.0.0.1", Port = 0, LogLevel = options.LogTo is null ? LogLevel.None : options.LogLevel });
        return new TestServer(reference, weights, engine, model, server);
    }

    /// <summary>POSTs a JSON body; returns the status and the parsed response (the error object for an error).</summary>
    public async Task<(int Status, JsonElement Body)> Post(string path, string json)
    {
        using var response = await Http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
        string text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    public async Task<JsonElement> PostOk(string path, string json)
    {
        var (status, body) = await Post(path, json);
        Assert.True(status == 200, $"{status}: {body}");
        return body;
    }

    /// <summary>POSTs a streaming request and returns its events' JSON, checking the SSE framing and the final [DONE].</summary>
    public async Task<List<JsonElement>> Stream(string path, string json)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        string text = await response.Content.ReadAsStringAsync();
        var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("data: [DONE]", events[^1]);
        return events[..^1].Select(e =>
        {
            Assert.StartsWith("data: ", e);
            return JsonDocument.Parse(e["data: ".Length..]).RootElement.Clone();
        }).ToList();
    }

    public async Task<string> Metrics() => await Http.GetStringAsync("/metrics");

    /// <summary>One sample of /metrics: the value of the line that starts with <paramref name="series"/>.</summary>
    public async Task<double> Metric(string series)
    {
        var line = (await Metrics()).Split('\n').FirstOrDefault(l => l.StartsWith(series + " "));
        return line is null ? 0 : double.Parse(line[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    public static int[] TokenIds(JsonElement response) =>
        response.GetProperty("longctx").GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();

    public static string Json(object value) => JsonSerializer.Serialize(value);

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
        _engine.Dispose();
        _weights.Dispose();
    }
}
