using System.Text;
using LongCtx.ContextParallel;
using LongCtx.Engine;
using LongCtx.Sampling;
using LongCtx.Server;
using LongCtx.Tests.Engine;

namespace LongCtx.Tests.Server;

/// <summary>Many clients at once lose nothing; the concurrency limit answers 429; a client that goes away frees its KV.</summary>
[Collection("server")]
public class ConcurrencyTests(LlamaServer fixture)
{
    private const int Clients = 50, MaxTokens = 6;

    [Fact]
    public async Task FiftyConcurrentClientsEachGetTheirSequentialAnswer()
    {
        var s = fixture.Server;
        var ids = ReferenceModel.TinyLlama3.InputIds;
        var prompts = Enumerable.Range(0, Clients).Select(i => ids.AsSpan(i * 17 % 1500, 8 + i * 7 % 50).ToArray()).ToArray();

        // One request at a time, straight on an engine of its own: the answers to expect.
        var (engine, weights) = ReferenceModel.TinyLlama3.Open(1);
        var expected = prompts.Select(p => engine.Generate(engine.NewSequence(),
            new GenerationRequest(p, MaxTokens, new SamplingOptions(), StrategyNames.Dense, StopTokens: s.Model.StopTokens.ToArray())).Tokens.ToArray()).ToArray();
        engine.Dispose();
        weights.Dispose();

        double prefillsBefore = await s.Metric("longctx_prefill_calls_total"), stepsBefore = await s.Metric("longctx_decode_steps_total");
        var answers = await Task.WhenAll(prompts.Select(async (p, i) =>
        {
            string json = TestServer.Json(new { prompt = p, max_tokens = MaxTokens, temperature = 0, stream = i % 2 == 1 });
            return i % 2 == 1 ? TestServer.TokenIds((await s.Stream("/v1/completions", json))[^1]) : TestServer.TokenIds(await s.PostOk("/v1/completions", json));
        }));
        for (int i = 0; i < Clients; i++) Assert.True(expected[i].SequenceEqual(answers[i]), $"client {i}: expected [{string.Join(',', expected[i])}], got [{string.Join(',', answers[i])}]");
        // Requests shared engine calls: fused prefills, and decode steps over many requests at once.
        double prefills = await s.Metric("longctx_prefill_calls_total") - prefillsBefore, steps = await s.Metric("longctx_decode_steps_total") - stepsBefore;
        Assert.True(prefills < Clients, $"{prefills} prefill calls for {Clients} requests");
        Assert.True(steps < Clients * (MaxTokens - 1), $"{steps} decode steps for {Clients} requests");
    }

    [Fact]
    public async Task OverTheLimitIs429AndADisconnectedClientIsDropped()
    {
        await using var s = await TestServer.Start(ReferenceModel.TinyLlama3, options: new ServerOptions { MaxConcurrent = 1, MaxWaiting = 0 });
        string longJob = TestServer.Json(new { prompt = ReferenceModel.TinyLlama3.InputIds[..40], max_tokens = 5000, temperature = 0, stream = true });
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(longJob, Encoding.UTF8, "application/json") };
        var response = await s.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.StartsWith("data: ", await reader.ReadLineAsync()); // the first token: the job is running

        var (status, error) = await s.Post("/v1/completions", TestServer.Json(new { prompt = "hi", max_tokens = 2 }));
        Assert.Equal(429, status);
        Assert.Equal("rate_limit_error", error.GetProperty("error").GetProperty("type").GetString());

        reader.Dispose();
        response.Dispose(); // the client goes away mid-stream
        await WaitFor(async () => await s.Metric("longctx_requests_cancelled_total") == 1 && await s.Metric("longctx_kv_cache_bytes{rank=\"0\"}") == 0);
        await s.PostOk("/v1/completions", TestServer.Json(new { prompt = "hi", max_tokens = 2 }));
    }

    private static async Task WaitFor(Func<Task<bool>> condition)
    {
        for (int i = 0; i < 100; i++)
        {
            if (await condition()) return;
            await Task.Delay(100);
        }
        Assert.Fail("the condition did not hold within 10 s");
    }
}
