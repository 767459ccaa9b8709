using System.Text;
using System.Text.Json;
using LongCtx.Server;
using LongCtx.Tests.Engine;

namespace LongCtx.Tests.Server;

/// <summary>
/// The bound on KV memory (--max-kv-tokens): a request enters the engine only when its prompt and max_tokens fit beside
/// what the others may grow to, and waits in the queue until they do; kept conversations are released to make room; a
/// request that could never fit is a 400 at once.
/// </summary>
public class KvBudgetTests
{
    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static string Prompt(int n, int from = 1000) => string.Join(",", Enumerable.Range(from, n));

    [Fact]
    public async Task ARequestWaitsForKvRoomAndOneThatNeverFitsIs400()
    {
        await using var s = await TestServer.Start(ReferenceModel.TinyLlama3, options: new ServerOptions { MaxKvTokens = 400 });
        Assert.Equal(400, s.Server.KvCapacity);
        // 50 + 300 positions: room for it, not for it and the next.
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = Json($$"""{"prompt": [{{Prompt(50)}}], "max_tokens": 300, "temperature": 0, "stream": true}""") };
        using var running = await s.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var reader = new StreamReader(await running.Content.ReadAsStreamAsync());
        Assert.StartsWith("data: ", await reader.ReadLineAsync());

        var waiting = s.Http.PostAsync("/v1/completions", Json($$"""{"prompt": [{{Prompt(50, 2000)}}], "max_tokens": 10, "temperature": 0}"""));
        for (int i = 0; i < 100 && await s.Metric("longctx_num_requests_waiting") < 1; i++) await Task.Delay(50);
        Assert.Equal(1, await s.Metric("longctx_num_requests_waiting"));
        Assert.Equal(1, await s.Metric("longctx_num_requests_running"));
        Assert.False(waiting.IsCompleted);

        var (status, error) = await s.Post("/v1/completions", $$"""{"prompt": [{{Prompt(10)}}], "max_tokens": 500}""");
        Assert.Equal(400, status);
        Assert.Contains("--max-kv-tokens", error.GetProperty("error").GetProperty("message").GetString());

        reader.Dispose();
        running.Dispose(); // its KV goes, and the waiting request gets the room
        var answer = await waiting;
        Assert.True(answer.IsSuccessStatusCode, await answer.Content.ReadAsStringAsync());
        Assert.Equal(10, JsonDocument.Parse(await answer.Content.ReadAsStringAsync()).RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task KeptConversationsMakeRoom()
    {
        await using var s = await TestServer.Start(ReferenceModel.TinyLlama3, options: new ServerOptions { MaxKvTokens = 400 });
        await s.PostOk("/v1/chat/completions", """{"messages": [{"role": "user", "content": "Keep this conversation for a while, please."}], "max_tokens": 4}""");
        Assert.Equal(1, await s.Metric("longctx_kept_conversations"));
        Assert.True(await s.Metric("longctx_kv_cache_usage_perc") > 0);
        // 390 positions: only with the kept conversation's KV released.
        await s.PostOk("/v1/completions", $$"""{"prompt": [{{Prompt(380)}}], "max_tokens": 10, "temperature": 0}""");
        for (int i = 0; i < 50 && await s.Metric("longctx_kv_cache_bytes{rank=\"0\"}") > 0; i++) await Task.Delay(50);
        Assert.Equal(0, await s.Metric("longctx_kept_conversations"));
        Assert.Equal(0, await s.Metric("longctx_kv_cache_bytes{rank=\"0\"}"));
    }
}
