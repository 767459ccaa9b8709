using System.Text;
using System.Text.Json;
using LongCtx.Server;
using LongCtx.Tests.Engine;

namespace LongCtx.Tests.Server;

/// <summary>Bad requests get the right status and OpenAI's error object, and the server keeps serving.</summary>
public class BadRequestTests : IAsyncLifetime
{
    private const int MaxPrompt = 64;
    private TestServer _s = null!;

    public async Task InitializeAsync() => _s = await TestServer.Start(ReferenceModel.TinyLlama3, options: new ServerOptions { MaxPromptTokens = MaxPrompt });
    public async Task DisposeAsync() => await _s.DisposeAsync();

    private const string Chat = "/v1/chat/completions", Completions = "/v1/completions";
    private const string Hi = """[{"role": "user", "content": "hi"}]""";

    public static TheoryData<string, string, string, int, string?> Cases => new()
    {
        // name, path, body, status, param
        { "malformed JSON", Chat, """{"messages": [""", 400, null },
        { "empty body", Chat, "", 400, null },
        { "not an object", Chat, "[1, 2]", 400, null },
        { "a field given twice", Completions, """{"prompt": "hi", "prompt": "ho"}""", 400, null },
        { "a nested field given twice", Completions, """{"prompt": "hi", "logit_bias": {"5": 1, "5": -1}}""", 400, null },
        { "missing messages", Chat, """{"max_tokens": 4}""", 400, "messages" },
        { "messages not an array", Chat, """{"messages": "hi"}""", 400, "messages" },
        { "empty messages", Chat, """{"messages": []}""", 400, "messages" },
        { "unknown role", Chat, """{"messages": [{"role": "robot", "content": "hi"}]}""", 400, "messages[0].role" },
        { "missing content", Chat, """{"messages": [{"role": "user"}]}""", 400, "messages[0].content" },
        { "negative max_tokens", Chat, $$"""{"messages": {{Hi}}, "max_tokens": -5}""", 400, "max_tokens" },
        { "max_tokens not an integer", Chat, $$"""{"messages": {{Hi}}, "max_tokens": 2.5}""", 400, "max_tokens" },
        { "temperature a string", Chat, $$"""{"messages": {{Hi}}, "temperature": "hot"}""", 400, "temperature" },
        { "temperature out of range", Chat, $$"""{"messages": {{Hi}}, "temperature": 7}""", 400, "temperature" },
        { "top_p zero", Chat, $$"""{"messages": {{Hi}}, "top_p": 0}""", 400, "top_p" },
        { "top_k below -1", Chat, $$"""{"messages": {{Hi}}, "top_k": -2}""", 400, "top_k" },
        { "top_k not an integer", Chat, $$"""{"messages": {{Hi}}, "top_k": 2.5}""", 400, "top_k" },
        { "stop a number", Chat, $$"""{"messages": {{Hi}}, "stop": 3}""", 400, "stop" },
        { "n of 2", Chat, $$"""{"messages": {{Hi}}, "n": 2}""", 400, "n" },
        { "unknown model", Chat, $$"""{"messages": {{Hi}}, "model": "gpt-4o"}""", 404, "model" },
        { "unknown strategy", Chat, $$$"""{"messages": {{{Hi}}}, "longctx": {"strategy": "pass-z"}}""", 400, "longctx.strategy" },
        { "apb without allow_approximate", Chat, $$$"""{"messages": {{{Hi}}}, "longctx": {"strategy": "apb"}}""", 400, "longctx.allow_approximate" },
        { "star with allow_approximate false", Completions, """{"prompt": [1, 2, 3], "longctx": {"strategy": "star", "allow_approximate": false}}""", 400, "longctx.allow_approximate" },
        { "query_tokens as long as the prompt", Completions, """{"prompt": [1, 2, 3], "longctx": {"strategy": "star", "allow_approximate": true, "query_tokens": 3}}""", 400, "longctx.query_tokens" },
        { "prompt too short for a document and a query", Completions, """{"prompt": [1], "longctx": {"strategy": "apb", "allow_approximate": true}}""", 400, "prompt" },
        { "negative anchor_tokens", Chat, $$$"""{"messages": {{{Hi}}}, "longctx": {"strategy": "apb", "allow_approximate": true, "anchor_tokens": -1}}""", 400, "longctx.anchor_tokens" },
        { "negative passing_tokens", Chat, $$$"""{"messages": {{{Hi}}}, "longctx": {"strategy": "apb", "allow_approximate": true, "passing_tokens": -8}}""", 400, "longctx.passing_tokens" },
        { "allow_approximate not a bool", Chat, $$$"""{"messages": {{{Hi}}}, "longctx": {"allow_approximate": "yes"}}""", 400, "longctx.allow_approximate" },
        { "query_tokens zero", Chat, $$$"""{"messages": {{{Hi}}}, "longctx": {"query_tokens": 0}}""", 400, "longctx.query_tokens" },
        { "missing prompt", Completions, """{"max_tokens": 4}""", 400, "prompt" },
        { "prompt of mixed types", Completions, """{"prompt": [1, "a"]}""", 400, "prompt" },
        { "token id outside the vocabulary", Completions, """{"prompt": [1, 999999]}""", 400, "prompt" },
        { "prompt longer than --max-prompt-tokens", Completions, $$"""{"prompt": [{{string.Join(",", Enumerable.Repeat(791, MaxPrompt + 1))}}]}""", 400, "prompt" },
        { "logprobs over 20", Completions, """{"prompt": [1, 2], "logprobs": 21}""", 400, "logprobs" },
        { "negative logprobs", Completions, """{"prompt": [1, 2], "logprobs": -1}""", 400, "logprobs" },
        { "logprobs true on completions", Completions, """{"prompt": [1, 2], "logprobs": true}""", 400, "logprobs" },
        { "top_logprobs over 20", Chat, $$"""{"messages": {{Hi}}, "logprobs": true, "top_logprobs": 21}""", 400, "top_logprobs" },
        { "top_logprobs without logprobs", Chat, $$"""{"messages": {{Hi}}, "top_logprobs": 2}""", 400, "top_logprobs" },
        { "top_logprobs with logprobs false", Chat, $$"""{"messages": {{Hi}}, "logprobs": false, "top_logprobs": 2}""", 400, "top_logprobs" },
        { "echo with logprobs under an approximate strategy", Completions,
            """{"prompt": [1, 2, 3, 4], "echo": true, "logprobs": 1, "longctx": {"strategy": "star", "allow_approximate": true, "query_tokens": 2}}""", 400, "echo" },
        { "max_tokens 0 without echo", Completions, """{"prompt": [1, 2], "max_tokens": 0}""", 400, "max_tokens" },
        { "a batch of two prompts", Completions, """{"prompt": [[1, 2], [3, 4]]}""", 400, "prompt" },
        { "body over the size limit", Completions, $$"""{"prompt": "{{new string('a', 2 << 20)}}"}""", 413, null },
        { "tokenize body over the size limit", "/tokenize", $$"""{"prompt": "{{new string('a', 2 << 20)}}"}""", 413, null },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task AnsweredWithTheRightStatus(string name, string path, string body, int status, string? param)
    {
        var response = await _s.Http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(status == (int)response.StatusCode, $"{name}: {(int)response.StatusCode} {text}");
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        Assert.DoesNotContain('\n', error.GetProperty("message").GetString()!);
        Assert.Equal(JsonValueKind.String, error.GetProperty("type").ValueKind);
        Assert.True(error.TryGetProperty("code", out _));
        Assert.Equal(param, error.GetProperty("param").GetString());

        // Still serving.
        Assert.Equal("ok", JsonDocument.Parse(await _s.Http.GetStringAsync("/health")).RootElement.GetProperty("status").GetString());
    }

    [Fact]
    public async Task ABodyOverTheLimitSaysWhatTheLimitIsAndWhatToDo()
    {
        var (status, body) = await _s.Post(Completions, $$"""{"prompt": "{{new string('a', 2 << 20)}}"}""");
        Assert.Equal(413, status);
        string message = body.GetProperty("error").GetProperty("message").GetString()!;
        Assert.Contains($"{1 << 20} bytes", message);
        Assert.Contains("--max-prompt-tokens", message);
    }

    /// <summary>What Kestrel refuses while it reads a body (too slow: 408, too large: 413) is the client's error, not the server's.</summary>
    [Theory]
    [InlineData(408)]
    [InlineData(413)]
    public void ABodyRefusedWhileReadIsAnInvalidRequest(int status) => Assert.Equal("invalid_request_error", new ApiException(status, "refused").Type);

    [Fact]
    public async Task UnknownRouteIs404InOpenAisShape()
    {
        var response = await _s.Http.GetAsync("/v1/embeddings");
        Assert.Equal(404, (int)response.StatusCode);
        Assert.Contains("/v1/embeddings", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task ErrorsAreCountedByStatus()
    {
        await _s.Http.PostAsync(Chat, new StringContent("{", Encoding.UTF8, "application/json"));
        Assert.True(await _s.Metric("longctx_requests_total{route=\"/v1/chat/completions\",status=\"400\"}") >= 1);
    }

    /// <summary>The prompt's logprobs are computed where the logits are, a slice of rows at a time: any admitted prompt may ask for them.</summary>
    [Fact]
    public async Task EchoWithLogprobsTakesAnyAdmittedPrompt()
    {
        string prompt = string.Join(",", Enumerable.Repeat(791, MaxPrompt));
        await _s.PostOk(Completions, $$"""{"prompt": [{{prompt}}], "echo": true, "max_tokens": 1}""");
        await _s.PostOk(Completions, $$"""{"prompt": [{{prompt}}], "echo": true, "logprobs": 3, "max_tokens": 0}""");
    }

    [Fact]
    public async Task DenseIsAcceptedOnOneRank() =>
        await _s.PostOk(Chat, $$$"""{"messages": {{{Hi}}}, "max_tokens": 2, "longctx": {"strategy": "dense", "allow_approximate": true, "query_tokens": 16}}""");
}
