using System.Net;
using System.Text;
using System.Text.Json;
using LongCtx.Server;
using LongCtx.Tests.Engine;

namespace LongCtx.Tests.Server;

/// <summary>
/// The smaller things a client meets: max_tokens checked against the context window; fields the server would have to act
/// on and does not are a 400 naming them; text that is not Unicode is a 400; models by id; 405 for a known route's
/// other methods and HEAD /health; a real created time; requests beyond --max-concurrent queue, beyond --max-waiting a
/// 429 with Retry-After; a stream sends keep-alive comments before its first token; a client that goes away is counted
/// as 499, not 200.
/// </summary>
[Collection("server")]
public class RequestLimitsTests(LlamaServer fixture)
{
    private TestServer S => fixture.Server;

    [Fact]
    public async Task MaxTokensBeyondTheContextWindowIs400()
    {
        var (status, body) = await S.Post("/v1/completions", """{"prompt": [128000, 791], "max_tokens": 200000}""");
        Assert.Equal(400, status);
        var error = body.GetProperty("error");
        Assert.Equal("max_tokens", error.GetProperty("param").GetString());
        Assert.Equal("context_length_exceeded", error.GetProperty("code").GetString());
        Assert.Contains("131072", error.GetProperty("message").GetString());
        // Just inside the window is accepted (and stops at its limit).
        await S.PostOk("/v1/completions", """{"prompt": [128000, 791], "max_tokens": 131070, "stop": [" "], "temperature": 0, "logit_bias": {"220": 100}}""");
    }

    [Theory]
    [InlineData("/v1/chat/completions", """ "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}] """, "tools")]
    [InlineData("/v1/chat/completions", """ "tools": {"type": "function", "function": {"name": "f"}} """, "tools")]
    [InlineData("/v1/chat/completions", """ "tool_choice": "required" """, "tool_choice")]
    [InlineData("/v1/chat/completions", """ "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}} """, "response_format")]
    [InlineData("/v1/chat/completions", """ "response_format": {"type": "json_object"} """, "response_format")]
    [InlineData("/v1/completions", """ "best_of": 3 """, "best_of")]
    [InlineData("/v1/completions", """ "suffix": "}" """, "suffix")]
    public async Task FieldsThatAreNotImplementedAre400NamingThem(string path, string field, string param)
    {
        string body = path == "/v1/completions" ? $$"""{"prompt": "Hi", {{field}}}""" : $$"""{"messages": [{"role": "user", "content": "Hi"}], {{field}}}""";
        var (status, error) = await S.Post(path, body);
        Assert.True(status == 400, $"{field}: {status} {error}");
        Assert.Equal(param, error.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task FieldsThatChangeNothingAreAccepted() =>
        await S.PostOk("/v1/chat/completions", """{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "tools": [], "tool_choice": "none", "response_format": {"type": "text"}, "user": "u1"}""");

    [Theory]
    [InlineData("/v1/completions", """{"prompt": "abc\ud800def"}""", "prompt")]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": "\udc00"}]}""", "messages[0].content")]
    [InlineData("/v1/completions", """{"prompt": "ok", "stop": ["\ud83d"]}""", "stop[0]")]
    public async Task TextThatIsNotUnicodeIs400(string path, string body, string param)
    {
        var (status, error) = await S.Post(path, body);
        Assert.True(status == 400, $"{status} {error}");
        Assert.Equal(param, error.GetProperty("error").GetProperty("param").GetString());
        // A whole surrogate pair is Unicode: an emoji goes through.
        await S.PostOk("/v1/completions", """{"prompt": "\ud83d\ude00", "max_tokens": 1}""");
    }

    /// <summary>Bytes that are not UTF-8 are named as such, not as a lone surrogate.</summary>
    [Fact]
    public async Task BytesThatAreNotUtf8Are400()
    {
        var content = new ByteArrayContent([.. "{\"prompt\": \"a"u8, 0xFF, 0xFE, .. "b\"}"u8]);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        var response = await S.Http.PostAsync("/v1/completions", content);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Equal("prompt", error.GetProperty("param").GetString());
        Assert.Contains("not UTF-8", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task ModelsByIdAndARealCreatedTime()
    {
        var model = JsonDocument.Parse(await S.Http.GetStringAsync("/v1/models/tiny-llama3")).RootElement;
        Assert.Equal("tiny-llama3", model.GetProperty("id").GetString());
        Assert.Equal("model", model.GetProperty("object").GetString());
        long created = model.GetProperty("created").GetInt64();
        Assert.InRange(created, DateTimeOffset.UtcNow.AddDays(-1).ToUnixTimeSeconds(), DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        Assert.Equal(created, JsonDocument.Parse(await S.Http.GetStringAsync("/v1/models")).RootElement.GetProperty("data")[0].GetProperty("created").GetInt64());
        var missing = await S.Http.GetAsync("/v1/models/gpt-4o");
        Assert.Equal(404, (int)missing.StatusCode);
        Assert.Equal("model_not_found", JsonDocument.Parse(await missing.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Theory]
    [InlineData("GET", "/v1/completions", "POST")]
    [InlineData("PUT", "/v1/chat/completions", "POST")]
    [InlineData("POST", "/v1/models", "GET")]
    [InlineData("DELETE", "/health", "GET, HEAD")]
    public async Task AKnownRoutesOtherMethodsAre405(string method, string path, string allow)
    {
        using var response = await S.Http.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));
        Assert.Equal(405, (int)response.StatusCode);
        Assert.Equal(allow, string.Join(", ", response.Content.Headers.Allow));
        Assert.Equal("invalid_request_error", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("type").GetString());
    }

    [Fact]
    public async Task HeadHealthIs200()
    {
        using var response = await S.Http.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/health"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task RequestsBeyondMaxConcurrentQueue()
    {
        await using var s = await TestServer.Start(ReferenceModel.TinyLlama3, options: new ServerOptions { MaxConcurrent = 1 });
        using var running = await StartStream(s, """{"prompt": [128000, 791, 6864], "max_tokens": 5000, "temperature": 0, "stream": true}""");
        var queued = s.Http.PostAsync("/v1/completions", new StringContent("""{"prompt": [128000, 791], "max_tokens": 3, "temperature": 0}""", Encoding.UTF8, "application/json"));
        for (int i = 0; i < 100 && await s.Metric("longctx_num_requests_waiting") < 1 && !queued.IsCompleted; i++) await Task.Delay(50);
        if (queued.IsCompleted) Assert.Fail($"the second request was answered while the first ran: {await (await queued).Content.ReadAsStringAsync()}");
        running.Dispose(); // the running client leaves; the queued one gets the engine
        var answer = await queued;
        Assert.True(answer.IsSuccessStatusCode, await answer.Content.ReadAsStringAsync());
        Assert.Equal(3, JsonDocument.Parse(await answer.Content.ReadAsStringAsync()).RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task BeyondTheQueueIs429WithRetryAfter()
    {
        await using var s = await TestServer.Start(ReferenceModel.TinyLlama3, options: new ServerOptions { MaxConcurrent = 1, MaxWaiting = 1 });
        using var running = await StartStream(s, """{"prompt": [128000, 791, 6864], "max_tokens": 5000, "temperature": 0, "stream": true}""");
        var queued = s.Http.PostAsync("/v1/completions", new StringContent("""{"prompt": [128000, 791], "max_tokens": 3, "temperature": 0}""", Encoding.UTF8, "application/json"));
        for (int i = 0; i < 100 && await s.Metric("longctx_num_requests_waiting") < 1; i++) await Task.Delay(50);
        Assert.Equal(1, await s.Metric("longctx_num_requests_waiting"));

        using var refused = await s.Http.PostAsync("/v1/completions", new StringContent("""{"prompt": [128000], "max_tokens": 2}""", Encoding.UTF8, "application/json"));
        Assert.Equal(429, (int)refused.StatusCode);
        Assert.True(refused.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1), $"Retry-After: {refused.Headers.RetryAfter}");
        Assert.Equal("rate_limit_error", JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("type").GetString());
        running.Dispose();
        Assert.True((await queued).IsSuccessStatusCode);
    }

    /// <summary>A completion stream whose prefill takes a few seconds sends SSE comments meanwhile (proxies close idle connections).</summary>
    [Fact]
    public async Task AStreamSendsKeepAlivesBeforeItsFirstToken()
    {
        await using var s = await TestServer.Start(ReferenceModel.TinyLlama3, options: new ServerOptions { KeepAliveInterval = TimeSpan.FromMilliseconds(200), MaxBatchTokens = 512 });
        string prompt = string.Join(",", Enumerable.Range(0, 6000).Select(i => 1000 + i % 7000));
        using var stream = await StartStream(s, $$"""{"prompt": [{{prompt}}], "max_tokens": 1, "stream": true}""");
        var lines = new List<string>();
        while (await stream.Reader.ReadLineAsync() is { } line && line != "data: [DONE]") lines.Add(line);
        int firstData = lines.FindIndex(l => l.StartsWith("data: ", StringComparison.Ordinal));
        Assert.True(firstData > 0 && lines.Take(firstData).Any(l => l == ": keep-alive"), string.Join(" | ", lines.Take(10)));
    }

    [Fact]
    public async Task AClientThatGoesAwayIsCounted499()
    {
        double before = await S.Metric("longctx_requests_total{route=\"/v1/completions\",status=\"499\"}");
        using (var stream = await StartStream(S, """{"prompt": [128000, 791, 6864], "max_tokens": 5000, "temperature": 0, "stream": true}"""))
            Assert.StartsWith("data: ", await stream.Reader.ReadLineAsync());
        for (int i = 0; i < 100 && await S.Metric("longctx_requests_total{route=\"/v1/completions\",status=\"499\"}") == before; i++) await Task.Delay(50);
        Assert.Equal(before + 1, await S.Metric("longctx_requests_total{route=\"/v1/completions\",status=\"499\"}"));
    }

    /// <summary>An open server-sent event stream: its response and a reader of its lines; disposing it is the client going away.</summary>
    private sealed class OpenStream(HttpResponseMessage response, StreamReader reader) : IDisposable
    {
        public StreamReader Reader { get; } = reader;

        public void Dispose()
        {
            Reader.Dispose();
            response.Dispose();
        }
    }

    private static async Task<OpenStream> StartStream(TestServer s, string body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        var response = await s.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)response.StatusCode);
        return new OpenStream(response, new StreamReader(await response.Content.ReadAsStreamAsync()));
    }
}
