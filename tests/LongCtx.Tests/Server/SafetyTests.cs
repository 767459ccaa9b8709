using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using LongCtx.Server;
using LongCtx.Tests.Engine;

namespace LongCtx.Tests.Server;

/// <summary>
/// Safe by default: a --host that is not this machine refuses to start (a typo never opens the server to the network);
/// only Host headers that name this server are served (DNS rebinding); a web page can neither read from the server (no
/// CORS unless --allowed-origins) nor make it generate with a form or text/plain POST (415) or from another origin (403);
/// with --api-key every /v1 route needs the key; and kept conversations never cross API keys or cache_salt values, so
/// cached_tokens tells a client nothing about another's prompts.
/// </summary>
[Collection("server")]
public class SafetyTests(LlamaServer fixture)
{
    private TestServer S => fixture.Server;
    private const string Completion = """{"prompt": [128000, 791, 6864], "max_tokens": 2, "temperature": 0}""";

    [Theory]
    [InlineData("locahost", "does not resolve")]
    [InlineData("127.0.0.l", "does not resolve")]
    [InlineData("nonexistent.invalid", "does not resolve")]
    [InlineData("192.0.2.1", "is not an address of this machine")]
    public async Task AHostThatIsNotThisMachineRefusesToStart(string host, string why)
    {
        using var p = ServeProcess.Start("--host", host);
        int? exit = await p.Exit(TimeSpan.FromSeconds(60));
        Assert.True(exit is not null, $"longctx serve --host {host} is still running: {string.Join(" | ", p.Stdout)}");
        Assert.NotEqual(0, exit);
        Assert.DoesNotContain(p.Stdout, l => l.StartsWith("listening on", StringComparison.Ordinal));
        string error = Assert.Single(p.Stderr, l => l.StartsWith("error:", StringComparison.Ordinal));
        Assert.Contains($"--host {host} {why}", error);
    }

    [Theory]
    [InlineData("localhost", "127.0.0.1")]
    [InlineData("0.0.0.0", "0.0.0.0")]
    [InlineData("::1", "::1")]
    public void ThisMachineAndEveryInterfaceAreAccepted(string host, string address) =>
        Assert.Equal(IPAddress.Parse(address), BindAddress.Resolve(host));

    [Theory]
    [InlineData("evil.example.com")]
    [InlineData("rebound.attacker.test:8000")]
    public async Task AHostHeaderNamingAnotherServerIsRefused(string host)
    {
        double before = await S.Metric("longctx_generation_tokens_total");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = Json(Completion) };
        request.Headers.Host = host;
        using var response = await S.Http.SendAsync(request);
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Contains("--allowed-hosts", Error(await response.Content.ReadAsStringAsync()));
        Assert.Equal(before, await S.Metric("longctx_generation_tokens_total"));
        // This machine's names pass.
        foreach (string ok in new[] { "localhost", Dns.GetHostName(), $"127.0.0.1:{S.Server.Address.Port}", $"[::1]:{S.Server.Address.Port}" })
        {
            using var good = new HttpRequestMessage(HttpMethod.Get, "/health");
            good.Headers.Host = ok;
            Assert.Equal(HttpStatusCode.OK, (await S.Http.SendAsync(good)).StatusCode);
        }
    }

    /// <summary>
    /// What a web page can send without a preflight: a text/plain or form POST. It must not reach the model: from the
    /// page (with its Origin) it is refused for the origin, and any such body is refused for not being JSON.
    /// </summary>
    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData("multipart/form-data; boundary=x")]
    public async Task ABodyThatIsNotJsonIs415(string contentType)
    {
        double before = await S.Metric("longctx_generation_tokens_total");
        foreach (string? origin in new[] { null, "https://a-page-the-user-visits.example" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new ByteArrayContent(Encoding.UTF8.GetBytes(Completion)) };
            request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
            if (origin is not null) request.Headers.Add("Origin", origin);
            using var response = await S.Http.SendAsync(request);
            Assert.Equal(origin is null ? 415 : 403, (int)response.StatusCode);
            Assert.False(response.Headers.Contains("Access-Control-Allow-Origin"));
        }
        Assert.Equal(before, await S.Metric("longctx_generation_tokens_total"));
    }

    [Fact]
    public async Task CrossOriginRequestsAreRefusedUnlessTheOriginIsAllowed()
    {
        const string origin = "https://a-page-the-user-visits.example";
        using var json = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = Json(Completion) };
        json.Headers.Add("Origin", origin);
        using var refused = await S.Http.SendAsync(json);
        Assert.Equal(403, (int)refused.StatusCode);
        Assert.False(refused.Headers.Contains("Access-Control-Allow-Origin"));
        using var preflight = new HttpRequestMessage(HttpMethod.Options, "/v1/completions");
        preflight.Headers.Add("Origin", origin);
        preflight.Headers.Add("Access-Control-Request-Method", "POST");
        Assert.False((await S.Http.SendAsync(preflight)).Headers.Contains("Access-Control-Allow-Origin"));

        await using var open = await TestServer.Start(ReferenceModel.TinyLlama3, options: new ServerOptions { AllowedOrigins = [origin] });
        using var allowedPreflight = new HttpRequestMessage(HttpMethod.Options, "/v1/completions");
        allowedPreflight.Headers.Add("Origin", origin);
        allowedPreflight.Headers.Add("Access-Control-Request-Method", "POST");
        using var answer = await open.Http.SendAsync(allowedPreflight);
        Assert.Equal(204, (int)answer.StatusCode);
        Assert.Equal(origin, answer.Headers.GetValues("Access-Control-Allow-Origin").Single());
        using var allowed = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = Json(Completion) };
        allowed.Headers.Add("Origin", origin);
        using var served = await open.Http.SendAsync(allowed);
        Assert.Equal(200, (int)served.StatusCode);
        Assert.Equal(origin, served.Headers.GetValues("Access-Control-Allow-Origin").Single());
    }

    [Fact]
    public async Task WithAnApiKeyEveryV1RouteNeedsIt()
    {
        await using var s = await TestServer.Start(ReferenceModel.TinyLlama3, options: new ServerOptions { ApiKeys = ["sk-right"] });
        foreach (var (method, path, body) in new[] { ("POST", "/v1/completions", Completion), ("GET", "/v1/models", ""), ("GET", "/v1/models/tiny-llama3", ""), ("POST", "/tokenize", """{"prompt": "hi"}""") })
        {
            foreach (string? key in new[] { null, "sk-wrong", "sk-right" })
            {
                using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = body.Length > 0 ? Json(body) : null };
                if (key is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
                using var response = await s.Http.SendAsync(request);
                string text = await response.Content.ReadAsStringAsync();
                if (key == "sk-right") Assert.True(response.IsSuccessStatusCode, $"{method} {path} with the key: {text}");
                else
                {
                    Assert.True(401 == (int)response.StatusCode, $"{method} {path} with key {key ?? "none"}: {(int)response.StatusCode} {text}");
                    var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
                    Assert.Equal("invalid_api_key", error.GetProperty("code").GetString());
                }
            }
        }
        // Probes stay open.
        Assert.Equal(HttpStatusCode.OK, (await s.Http.GetAsync("/health")).StatusCode);
    }

    [Fact]
    public async Task KeptConversationsDoNotCrossApiKeysOrCacheSalts()
    {
        // Qwen2.5's template carries replies through unchanged, so a second turn extends the first token for token (ChatTests).
        await using var s = await TestServer.Start(ReferenceModel.TinyLlama3, options: new ServerOptions { ApiKeys = ["sk-alice", "sk-bob"] },
            templateFile: Path.Combine(Text.TokenizerFixtures.RepoRoot, "tests", "data", "chat", "templates", "qwen2_5.jinja"));
        object[] turn1 = [new { role = "user", content = "Tell me a secret about the sea." }];
        var first = await Chat(s, "sk-alice", turn1, salt: null);
        object[] turn2 = [.. turn1, new { role = "assistant", content = first.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString() }, new { role = "user", content = "More." }];

        Assert.Equal(0, Cached(await Chat(s, "sk-bob", turn2, salt: null)));          // another key: nothing to reuse
        Assert.Equal(0, Cached(await Chat(s, "sk-alice", turn2, salt: "a-secret-salt")));  // the same key, another salt
        Assert.True(Cached(await Chat(s, "sk-alice", turn2, salt: null)) > 0);         // the owner resumes it

        var saltFirst = await Chat(s, "sk-bob", turn1, salt: "bobs-salt");
        object[] saltTurn2 = [.. turn1, new { role = "assistant", content = saltFirst.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString() }, new { role = "user", content = "More." }];
        Assert.Equal(0, Cached(await Chat(s, "sk-bob", saltTurn2, salt: null)));
        Assert.True(Cached(await Chat(s, "sk-bob", saltTurn2, salt: "bobs-salt")) > 0);
    }

    /// <summary>Without API keys, cache_salt alone separates clients.</summary>
    [Fact]
    public async Task CacheSaltSeparatesClientsWithoutKeys()
    {
        await using var s = await TestServer.Start(ReferenceModel.TinyLlama3,
            templateFile: Path.Combine(Text.TokenizerFixtures.RepoRoot, "tests", "data", "chat", "templates", "qwen2_5.jinja"));
        object[] turn1 = [new { role = "user", content = "What did the other client ask?" }];
        var first = await Chat(s, null, turn1, salt: "client-a-secret");
        object[] turn2 = [.. turn1, new { role = "assistant", content = first.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString() }, new { role = "user", content = "Go on." }];
        Assert.Equal(0, Cached(await Chat(s, null, turn2, salt: null)));
        Assert.Equal(0, Cached(await Chat(s, null, turn2, salt: "client-b-secret")));
        Assert.True(Cached(await Chat(s, null, turn2, salt: "client-a-secret")) > 0);
    }

    private static async Task<JsonElement> Chat(TestServer s, string? key, object[] messages, string? salt)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = Json(TestServer.Json(salt is null ? new { messages, max_tokens = 4, temperature = 0 } : (object)new { messages, max_tokens = 4, temperature = 0, cache_salt = salt })),
        };
        if (key is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var response = await s.Http.SendAsync(request);
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private static int Cached(JsonElement response) => response.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32();

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static string Error(string body) => JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("message").GetString()!;
}
