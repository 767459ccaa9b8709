using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using LongCtx.Tests.Engine;
using LongCtx.Tests.Text;

namespace LongCtx.Tests.Server;

/// <summary>/v1/chat/completions: the Llama 3 template, streaming, the shape the openai client reads, and KV reuse across turns.</summary>
[Collection("server")]
public class ChatTests(LlamaServer fixture)
{
    private TestServer S => fixture.Server;

    private static object Msg(string role, string content) => new { role, content };

    private static string Chat(object[] messages, int maxTokens, bool stream = false) =>
        TestServer.Json(new { messages, max_tokens = maxTokens, temperature = 0, stream });

    private static string Content(JsonElement response) => response.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;

    [Fact]
    public async Task PromptIsTheLlama3TemplateAndStreamingAgrees()
    {
        object[] messages = [Msg("system", "You are terse."), Msg("user", "Name a colour.")];
        var whole = await S.PostOk("/v1/chat/completions", Chat(messages, 8));
        string rendered = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>" +
                          "<|start_header_id|>user<|end_header_id|>\n\nName a colour.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
        Assert.Equal(TokenizerFixtures.Llama3.Encode(rendered).Length, whole.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        var chunks = await S.Stream("/v1/chat/completions", Chat(messages, 8, stream: true));
        Assert.Equal("assistant", chunks[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        string streamed = string.Concat(chunks.Select(c => c.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("content", out var t) ? t.GetString() : ""));
        Assert.Equal(Content(whole), streamed);
        Assert.Equal(TestServer.TokenIds(whole), TestServer.TokenIds(chunks[^1]));
    }

    [Fact]
    public async Task SecondTurnReusesTheFirstTurnsCache()
    {
        // Served with a template that carries replies through unchanged (Qwen2.5's): Llama 3's trims them, and this
        // random model's replies are mostly whitespace, which the next turn's prompt would then render differently.
        await using var s = await TestServer.Start(ReferenceModel.TinyLlama3,
            templateFile: Path.Combine(TokenizerFixtures.RepoRoot, "tests", "data", "chat", "templates", "qwen2_5.jinja"));
        object[] turn1 = [Msg("system", "You answer in French."), Msg("user", "Describe the sea in a few words.")];
        var first = await s.PostOk("/v1/chat/completions", Chat(turn1, 6));
        var usage1 = first.GetProperty("usage");
        Assert.Equal(0, usage1.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());

        object[] turn2 = [.. turn1, Msg("assistant", Content(first)), Msg("user", "And the sky?")];
        var second = await s.PostOk("/v1/chat/completions", Chat(turn2, 6));
        // The first turn's prompt and reply are cached, but for the reply's last token (never fed back).
        int expectedCached = usage1.GetProperty("prompt_tokens").GetInt32() + usage1.GetProperty("completion_tokens").GetInt32() - 1;
        Assert.Equal(expectedCached, second.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        Assert.Equal(expectedCached, await s.Metric("longctx_prompt_cached_tokens_total"));
        Assert.True(await s.Metric("longctx_prefix_cache_hits_total") >= 1);

        // The partial prefill on the cache gives what a full prefill of the same conversation gives.
        var fresh = await s.PostOk("/v1/chat/completions", Chat(turn2, 6));
        Assert.Equal(0, fresh.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        Assert.Equal(TestServer.TokenIds(second), TestServer.TokenIds(fresh));
    }

    /// <summary>The request openai-python 1.x sends for client.chat.completions.create(..., stream=True, stream_options={"include_usage": True}).</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task WhatTheOpenAiPythonClientSendsAndReads(bool stream)
    {
        string body = $$"""{"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello."}],"model":"tiny-llama3","max_tokens":8,"n":1,"stream":{{(stream ? "true" : "false")}},{{(stream ? "\"stream_options\":{\"include_usage\":true}," : "")}}"temperature":0}""";
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "sk-no-key-needed");
        request.Headers.UserAgent.ParseAdd("OpenAI/Python 1.54.0");
        request.Headers.Add("X-Stainless-Lang", "python");
        request.Headers.Add("X-Stainless-Retry-Count", "0");
        using var response = await S.Http.SendAsync(request);
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);

        if (!stream)
        {
            var r = JsonDocument.Parse(text).RootElement;
            Assert.StartsWith("chatcmpl-", r.GetProperty("id").GetString());
            Assert.Equal("chat.completion", r.GetProperty("object").GetString());
            Assert.True(r.GetProperty("created").GetInt64() > 1_700_000_000);
            Assert.Equal("tiny-llama3", r.GetProperty("model").GetString());
            var choice = r.GetProperty("choices")[0];
            Assert.Equal(0, choice.GetProperty("index").GetInt32());
            Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
            Assert.Equal(JsonValueKind.String, choice.GetProperty("message").GetProperty("content").ValueKind);
            Assert.Contains(choice.GetProperty("finish_reason").GetString(), new[] { "stop", "length" });
            var usage = r.GetProperty("usage");
            Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32() + usage.GetProperty("completion_tokens").GetInt32(), usage.GetProperty("total_tokens").GetInt32());
            return;
        }
        var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("data: [DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e["data: ".Length..]).RootElement).ToList();
        Assert.Single(chunks.Select(c => c.GetProperty("id").GetString()).Distinct());
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        Assert.All(chunks, c => Assert.Equal("tiny-llama3", c.GetProperty("model").GetString()));
        var withChoices = chunks.Where(c => c.GetProperty("choices").GetArrayLength() > 0).ToList();
        Assert.All(withChoices, c => Assert.Equal(JsonValueKind.Null, c.GetProperty("usage").ValueKind));
        Assert.Contains(withChoices[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString(), new[] { "stop", "length" });
        // include_usage: a last chunk with no choices and the usage.
        var last = chunks[^1];
        Assert.Equal(0, last.GetProperty("choices").GetArrayLength());
        Assert.True(last.GetProperty("usage").GetProperty("completion_tokens").GetInt32() is > 0 and <= 8);
    }
}
