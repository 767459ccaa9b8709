using System.Text.Json;
using LongCtx.Server;
using LongCtx.Tests.Cli;
using LongCtx.Tests.Engine;
using LongCtx.Tests.Text;

namespace LongCtx.Tests.Server;

/// <summary>/v1/completions gives what `longctx generate` and transformers give, whole and streamed, on one rank and several.</summary>
[Collection("server")]
public class CompletionTests(LlamaServer fixture)
{
    private TestServer S => fixture.Server;

    private static string Greedy(int[] prompt, int maxTokens, bool stream = false, object? longctx = null) => TestServer.Json(new Dictionary<string, object?>
    {
        ["prompt"] = prompt, ["max_tokens"] = maxTokens, ["temperature"] = 0, ["stream"] = stream, ["longctx"] = longctx,
    }.Where(kv => kv.Value is not null).ToDictionary());

    [Fact]
    public async Task TokenIdPromptMatchesTransformersGreedy()
    {
        var reference = ReferenceModel.TinyLlama3;
        var body = await S.PostOk("/v1/completions", Greedy(reference.InputIds, 16));
        Assert.Equal("text_completion", body.GetProperty("object").GetString());
        Assert.Equal(reference.Greedy16, TestServer.TokenIds(body));
        var choice = body.GetProperty("choices")[0];
        Assert.Equal(TokenizerFixtures.Llama3.Decode(reference.Greedy16, skipSpecialTokens: true), choice.GetProperty("text").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        var usage = body.GetProperty("usage");
        Assert.Equal(reference.InputIds.Length, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(16, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(reference.InputIds.Length + 16, usage.GetProperty("total_tokens").GetInt32());
        Assert.Equal(0, usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
    }

    [Fact]
    public async Task StreamedCompletionEqualsTheWholeOne()
    {
        var prompt = ReferenceModel.TinyLlama3.InputIds[..200];
        var whole = await S.PostOk("/v1/completions", Greedy(prompt, 12));
        var chunks = await S.Stream("/v1/completions", Greedy(prompt, 12, stream: true));
        Assert.All(chunks, c => Assert.Equal("text_completion", c.GetProperty("object").GetString()));
        string text = string.Concat(chunks.Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.Equal(whole.GetProperty("choices")[0].GetProperty("text").GetString(), text);
        Assert.Equal("length", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.All(chunks[..^1], c => Assert.Equal(JsonValueKind.Null, c.GetProperty("choices")[0].GetProperty("finish_reason").ValueKind));
        Assert.Equal(TestServer.TokenIds(whole), TestServer.TokenIds(chunks[^1]));
    }

    [Fact]
    public async Task TextPromptMatchesTheGenerateCommand()
    {
        const string prompt = "The capital of France is";
        var cli = CliRunner.Run("generate", "--model", ReferenceModel.TinyLlama3.Directory, "--tokenizer", TokenizerFixtures.FetchedDir("llama3"),
            "--prompt", prompt, "--max-new-tokens", "10", "--temperature", "0", "--json");
        Assert.True(cli.ExitCode == 0, cli.Stderr);
        var expected = JsonDocument.Parse(cli.Stdout).RootElement.GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var body = await S.PostOk("/v1/completions", TestServer.Json(new { prompt, max_tokens = 10, temperature = 0 }));
        Assert.Equal(expected, TestServer.TokenIds(body));
    }

    [Fact]
    public async Task StopSequenceEndsAndIsTrimmed()
    {
        var prompt = ReferenceModel.TinyLlama3.InputIds[..300];
        string full = (await S.PostOk("/v1/completions", Greedy(prompt, 16))).GetProperty("choices")[0].GetProperty("text").GetString()!;
        string stop = full.Substring(full.Length / 2, 3);
        string expected = full[..full.IndexOf(stop, StringComparison.Ordinal)];
        foreach (bool stream in new[] { false, true })
        {
            string json = TestServer.Json(new { prompt, max_tokens = 16, temperature = 0, stop = new[] { "\u0001never", stop }, stream });
            if (stream)
            {
                var chunks = await S.Stream("/v1/completions", json);
                Assert.Equal(expected, string.Concat(chunks.Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString())));
                Assert.Equal("stop", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
            }
            else
            {
                var choice = (await S.PostOk("/v1/completions", json)).GetProperty("choices")[0];
                Assert.Equal(expected, choice.GetProperty("text").GetString());
                Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
            }
        }
    }

    [Fact]
    public async Task TwoRanksWithTheAutomaticStrategy()
    {
        var reference = ReferenceModel.TinyLlama3;
        await using var s = await TestServer.Start(reference, ranks: 2, new ServerOptions { Strategy = "auto" });
        var body = await s.PostOk("/v1/completions", Greedy(reference.InputIds, 16));
        Assert.Equal(reference.Greedy16, TestServer.TokenIds(body));
        string strategy = body.GetProperty("longctx").GetProperty("strategy").GetString()!;
        Assert.Contains(strategy, new[] { "pass-kv", "pass-q" });
        Assert.Equal(1, await s.Metric($"longctx_strategy_chosen_total{{strategy=\"{strategy}\"}}"));
        Assert.Equal(2, (await s.Metrics()).Split('\n').Count(l => l.StartsWith("longctx_kv_cache_bytes{rank=")));
    }

    [Fact]
    public async Task Qwen2OnThreeRanksWithPassQ()
    {
        var reference = ReferenceModel.TinyQwen2;
        await using var s = await TestServer.Start(reference, ranks: 3, chatTemplate: false);
        var body = await s.PostOk("/v1/completions", Greedy(reference.InputIds, 16, longctx: new { strategy = "pass-q" }));
        Assert.Equal(reference.Greedy16, TestServer.TokenIds(body));
        Assert.Equal("pass-q", body.GetProperty("longctx").GetProperty("strategy").GetString());

        // Without a known chat template the model serves completions only.
        var (status, error) = await s.Post("/v1/chat/completions", TestServer.Json(new { messages = new[] { new { role = "user", content = "hi" } } }));
        Assert.Equal(400, status);
        Assert.Equal("chat_template_unknown", error.GetProperty("error").GetProperty("code").GetString());
    }
}
