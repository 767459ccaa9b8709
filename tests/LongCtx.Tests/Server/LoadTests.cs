using System.Diagnostics;
using System.Text;
using System.Text.Json;
using LongCtx.Server;
using LongCtx.Tests.Engine;
using Xunit.Abstractions;

namespace LongCtx.Tests.Server;

/// <summary>
/// A bounded load on loopback: 64 clients at once, long prompts (prefilled in chunks) among short ones, streamed and not,
/// some going away mid-stream. Every answer is well-formed; each finished answer at temperature 0 is the one the same
/// request gets sent alone; afterwards the server holds no KV and nothing runs or waits.
/// </summary>
public class LoadTests(ITestOutputHelper output)
{
    private const int Clients = 64;

    private sealed record Client(int Index, int[] Prompt, int MaxTokens, bool Stream, bool Leaves);

    [Fact]
    public async Task ManyClientsLongAndShortSomeLeavingGetTheirAloneAnswers()
    {
        using var bound = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await using var s = await TestServer.Start(ReferenceModel.TinyLlama3, options: new ServerOptions { MaxBatchTokens = 512 });
        var random = new Random(11);
        var clients = Enumerable.Range(0, Clients).Select(i => new Client(i,
            [.. Enumerable.Range(0, i % 8 == 0 ? random.Next(700, 1200) : random.Next(4, 60)).Select(_ => random.Next(1000, 90000))],
            i % 8 == 3 ? 500 : random.Next(3, 9), Stream: i % 2 == 1, Leaves: i % 8 == 3)).ToArray();
        Assert.Equal(0, await s.Metric("longctx_kv_cache_bytes{rank=\"0\"}"));

        var clock = Stopwatch.StartNew();
        var answers = await Task.WhenAll(clients.Select(c => Send(s, c, bound.Token)));
        output.WriteLine($"{Clients} clients ({clients.Count(c => c.Prompt.Length >= 700)} long prompts, {clients.Count(c => c.Leaves)} leaving) answered in {clock.Elapsed.TotalSeconds:0.0} s");

        for (int i = 0; i < 100 && (await s.Metric("longctx_num_requests_running") > 0 || await s.Metric("longctx_kv_cache_bytes{rank=\"0\"}") > 0); i++) await Task.Delay(100);
        Assert.Equal(0, await s.Metric("longctx_num_requests_running"));
        Assert.Equal(0, await s.Metric("longctx_num_requests_waiting"));
        Assert.Equal(0, await s.Metric("longctx_kv_cache_bytes{rank=\"0\"}"));
        Assert.Equal(0, await s.Metric("longctx_kv_cache_usage_perc"));
        Assert.Equal(clients.Count(c => c.Leaves), await s.Metric("longctx_requests_cancelled_total"));

        foreach (var c in clients.Where(c => !c.Leaves))
        {
            int[] alone = (await Send(s, c with { Stream = false }, bound.Token))!, loaded = answers[c.Index]!;
            Assert.True(alone.SequenceEqual(loaded), $"client {c.Index} ({c.Prompt.Length} prompt tokens): under load [{string.Join(',', loaded)}], alone [{string.Join(',', alone)}]");
        }
    }

    /// <summary>The generated token ids, checking the response's shape; null for a client that left mid-stream.</summary>
    private static async Task<int[]?> Send(TestServer s, Client c, CancellationToken cancel)
    {
        string json = TestServer.Json(new { prompt = c.Prompt, max_tokens = c.MaxTokens, temperature = 0, stream = c.Stream });
        if (!c.Stream)
        {
            var body = await s.PostOk("/v1/completions", json);
            var choice = body.GetProperty("choices")[0];
            Assert.Equal("text_completion", body.GetProperty("object").GetString());
            Assert.Equal(JsonValueKind.String, choice.GetProperty("text").ValueKind);
            Assert.Contains(choice.GetProperty("finish_reason").GetString(), new[] { "stop", "length" });
            var ids = TestServer.TokenIds(body);
            Assert.Equal(ids.Length, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
            Assert.Equal(c.Prompt.Length, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
            return ids;
        }
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        using var response = await s.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel);
        Assert.Equal(200, (int)response.StatusCode);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancel));
        var events = new List<string>();
        while (await reader.ReadLineAsync(cancel) is { } line)
        {
            if (line.Length == 0 || line.StartsWith(':')) continue;
            Assert.StartsWith("data: ", line);
            events.Add(line["data: ".Length..]);
            if (c.Leaves && events.Count == 2) return null; // goes away mid-stream
        }
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e).RootElement).ToList();
        Assert.All(chunks[..^1], ch => Assert.Equal(JsonValueKind.Null, ch.GetProperty("choices")[0].GetProperty("finish_reason").ValueKind));
        Assert.Contains(chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString(), new[] { "stop", "length" });
        return TestServer.TokenIds(chunks[^1]);
    }
}
