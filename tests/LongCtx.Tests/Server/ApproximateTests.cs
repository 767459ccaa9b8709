using System.Text.Json;
using LongCtx.Approximate;
using LongCtx.ContextParallel;
using LongCtx.Engine;
using LongCtx.Model;
using LongCtx.Sampling;
using LongCtx.Server;
using LongCtx.Tests.Engine;
using LongCtx.Tests.Text;

namespace LongCtx.Tests.Server;

/// <summary>
/// Star and APB per request ("longctx": {"strategy", "allow_approximate", ...}) on a server of two CPU ranks:
/// the tokens are those of the engine run directly with the same strategy and options, whole and streamed,
/// completions and chat; they run beside exact requests without changing their answers; and a chat turn
/// neither reuses a kept conversation for an approximate prefill nor keeps an approximate one's KV.
/// </summary>
public class ApproximateTests : IAsyncLifetime
{
    private const int Ranks = 2, MaxTokens = 8;
    /// <summary>
    /// Approximate requests sample at temperature 1 with a seed: the tiny fixture's greedy tokens repeat one token
    /// whatever the attention, while a seeded draw follows the logits, so the tokens tell approximate from exact.
    /// </summary>
    private const int Seed = 1234;
    private static readonly SamplingOptions Seeded = new(Temperature: 1f, Seed: Seed);
    /// <summary>Small anchor and passing blocks, so that the approximation shows in the tokens.</summary>
    private static readonly ApproximateOptions Split = new(QueryTokens: 12, AnchorTokens: 4, PassingTokens: 2);

    private TestServer _s = null!;
    // The same model on as many ranks, driven directly, one request at a time: the answers to expect.
    private InferenceEngine _engine = null!;
    private ModelWeights _weights = null!;

    public async Task InitializeAsync()
    {
        _s = await TestServer.Start(ReferenceModel.TinyLlama3, Ranks);
        (_engine, _weights) = ReferenceModel.TinyLlama3.Open(Ranks);
    }

    public async Task DisposeAsync()
    {
        await _s.DisposeAsync();
        _engine.Dispose();
        _weights.Dispose();
    }

    private static object Longctx(string strategy) => new
    {
        strategy, allow_approximate = true, query_tokens = Split.QueryTokens, anchor_tokens = Split.AnchorTokens, passing_tokens = Split.PassingTokens,
    };

    /// <summary>A request body: greedy, or seeded when it carries a "longctx" field.</summary>
    private static string Body(string promptField, object prompt, bool stream, object? longctx) => TestServer.Json(new Dictionary<string, object?>
    {
        [promptField] = prompt, ["max_tokens"] = MaxTokens, ["stream"] = stream, ["longctx"] = longctx,
        ["temperature"] = longctx is null ? 0 : Seeded.Temperature, ["seed"] = longctx is null ? null : Seed,
    }.Where(kv => kv.Value is not null).ToDictionary());

    private static string Completion(int[] prompt, bool stream = false, object? longctx = null) => Body("prompt", prompt, stream, longctx);
    private static string Chat(ChatMessage[] messages, bool stream = false, object? longctx = null) =>
        Body("messages", messages.Select(m => new { role = m.Role, content = m.Content }).ToArray(), stream, longctx);

    private static ChatMessage Msg(string role, string content) => new(role, content);

    /// <summary>A user message long enough to split over the ranks: the fixture's prompt as text.</summary>
    private static ChatMessage LongUserMessage(int from) => Msg("user", TokenizerFixtures.Llama3.Decode(ReferenceModel.TinyLlama3.InputIds[from..(from + 300)], skipSpecialTokens: true));

    /// <summary>The chat prompt as the server encodes it (with the reply tokens it remembers).</summary>
    private int[] ChatTokens(ChatMessage[] messages) => ChatPrompt.Encode(_s.Model.Template!, _s.Model.Tokenizer, messages, _s.Model.Replies);

    private int[] Expected(int[] prompt, string strategy, ApproximateOptions? approximate = null, SamplingOptions? sampling = null)
    {
        var sequence = _engine.NewSequence();
        try
        {
            var request = new GenerationRequest(prompt, MaxTokens, sampling ?? new SamplingOptions(), strategy, StopTokens: _s.Model.StopTokens.ToArray(), Approximate: approximate);
            return _engine.Generate(sequence, request).Tokens.ToArray();
        }
        finally
        {
            _engine.Release(sequence);
        }
    }

    private static async Task<JsonElement> Last(Task<List<JsonElement>> chunks) => (await chunks)[^1];

    private static string Strategy(JsonElement response) => response.GetProperty("longctx").GetProperty("strategy").GetString()!;
    private static int CachedTokens(JsonElement response) => response.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32();
    private static string Content(JsonElement response) => response.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;

    [Theory]
    [InlineData("star", false, false)]
    [InlineData("apb", true, false)]
    [InlineData("apb", false, true)]
    [InlineData("star", true, true)]
    public async Task TokensAreTheEnginesWithTheSameStrategyAndOptions(string strategy, bool stream, bool chat)
    {
        ChatMessage[] messages = [LongUserMessage(from: 1)];
        var prompt = chat ? ChatTokens(messages) : ReferenceModel.TinyLlama3.InputIds[..300];
        var expected = Expected(prompt, strategy, Split, Seeded);
        // The options change the answer: a server that ran the prompt exactly would not give these tokens.
        Assert.NotEqual(Expected(prompt, StrategyNames.PassKv, sampling: Seeded), expected);

        string path = chat ? "/v1/chat/completions" : "/v1/completions";
        string json = chat ? Chat(messages, stream, Longctx(strategy)) : Completion(prompt, stream, Longctx(strategy));
        var body = stream ? await Last(_s.Stream(path, json)) : await _s.PostOk(path, json);
        Assert.Equal(expected, TestServer.TokenIds(body));
        Assert.Equal(strategy, Strategy(body));
        if (!stream) Assert.Equal(prompt.Length, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Fact]
    public async Task AutoAllowedToApproximatePicksApb()
    {
        var prompt = ReferenceModel.TinyLlama3.InputIds[100..400];
        double apbBefore = await _s.Metric("longctx_strategy_chosen_total{strategy=\"apb\"}");
        var body = await _s.PostOk("/v1/completions", Completion(prompt, longctx: new { allow_approximate = true }));
        Assert.Equal("apb", Strategy(body));
        var defaults = new ApproximateOptions(ApproximateDefaults.QueryTokens(prompt.Length), AllowInAuto: true);
        Assert.Equal(Expected(prompt, StrategyNames.Auto, defaults, Seeded), TestServer.TokenIds(body));
        Assert.Equal(apbBefore + 1, await _s.Metric("longctx_strategy_chosen_total{strategy=\"apb\"}"));
    }

    [Theory]
    [InlineData("""{"strategy": "star", "allow_approximate": true, "query_tokens": 2}""", "longctx.query_tokens")] // leaves 1 document token for 2 ranks
    [InlineData("""{"strategy": "dense"}""", "longctx.strategy")]
    public async Task WhatTwoRanksCannotRunIs400(string longctx, string param)
    {
        var (status, error) = await _s.Post("/v1/completions", $$"""{"prompt": [1, 2, 3], "longctx": {{longctx}}}""");
        Assert.Equal(400, status);
        Assert.Equal(param, error.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task PromptLogprobsNeedAnExactPrefill()
    {
        var prompt = ReferenceModel.TinyLlama3.InputIds;
        // Auto allowed to approximate would pick apb on two ranks: echo with logprobs is refused rather than approximated.
        var (status, error) = await _s.Post("/v1/completions", TestServer.Json(new { prompt, max_tokens = 0, echo = true, logprobs = 1, longctx = new { allow_approximate = true } }));
        Assert.Equal(400, status);
        Assert.Equal("echo", error.GetProperty("error").GetProperty("param").GetString());

        // Exact on two ranks: the rows come back from both in prompt order.
        var body = await _s.PostOk("/v1/completions", TestServer.Json(new { prompt, max_tokens = 0, echo = true, logprobs = 1 }));
        LogprobsTests.AssertPromptLogprobsOfTransformers(body.GetProperty("choices")[0].GetProperty("logprobs"));

        // An approximate prefill still gives the logprobs of the tokens it generates.
        var star = await _s.PostOk("/v1/completions", TestServer.Json(new { prompt = prompt[..300], max_tokens = 4, logprobs = 2, longctx = Longctx("star") }));
        Assert.Equal(TestServer.TokenIds(star).Length, star.GetProperty("choices")[0].GetProperty("logprobs").GetProperty("token_logprobs").GetArrayLength());
    }

    [Fact]
    public async Task ServerStrategyApbRunsTheRequestsThatNameNone()
    {
        await using var s = await TestServer.Start(ReferenceModel.TinyLlama3, Ranks, new ServerOptions { Strategy = StrategyNames.Apb });
        var prompt = ReferenceModel.TinyLlama3.InputIds[300..600];
        var body = await s.PostOk("/v1/completions", TestServer.Json(new { prompt, max_tokens = MaxTokens, temperature = Seeded.Temperature, seed = Seed }));
        Assert.Equal("apb", Strategy(body));
        Assert.Equal(Expected(prompt, StrategyNames.Apb, new ApproximateOptions(ApproximateDefaults.QueryTokens(prompt.Length)), Seeded), TestServer.TokenIds(body));

        // The operator's choice covers requests that name no strategy; one that names an approximate strategy opts in itself.
        var (status, error) = await s.Post("/v1/completions", Completion(prompt, longctx: new { strategy = "star" }));
        Assert.Equal(400, status);
        Assert.Equal("longctx.allow_approximate", error.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task ApproximateRequestsAmongExactOnesLeaveTheirAnswersAlone()
    {
        var ids = ReferenceModel.TinyLlama3.InputIds;
        var exactPrompts = Enumerable.Range(0, 8).Select(i => ids.AsSpan(i * 37, 20 + i * 9).ToArray()).ToArray();
        // Two of one strategy: were they fused into one prefill, the engine would refuse it.
        (string Strategy, int[] Prompt)[] approximate = [("star", ids[200..500]), ("apb", ids[600..900]), ("apb", ids[900..1150])];
        var exactExpected = exactPrompts.Select(p => Expected(p, StrategyNames.Auto)).ToArray();
        var approximateExpected = approximate.Select(a => Expected(a.Prompt, a.Strategy, Split, Seeded)).ToArray();

        // Every request at once, the approximate ones among the exact ones; half of each streamed.
        var exactAnswers = exactPrompts.Select(async (p, i) =>
        {
            string json = Completion(p, stream: i % 2 == 1);
            return TestServer.TokenIds(i % 2 == 1 ? await Last(_s.Stream("/v1/completions", json)) : await _s.PostOk("/v1/completions", json));
        }).ToArray();
        var approximateAnswers = approximate.Select(async (a, i) =>
        {
            string json = Completion(a.Prompt, stream: i % 2 == 1, Longctx(a.Strategy));
            var body = i % 2 == 1 ? await Last(_s.Stream("/v1/completions", json)) : await _s.PostOk("/v1/completions", json);
            Assert.Equal(a.Strategy, Strategy(body));
            return TestServer.TokenIds(body);
        }).ToArray();
        var exactResults = await Task.WhenAll(exactAnswers);
        var approximateResults = await Task.WhenAll(approximateAnswers);

        for (int i = 0; i < exactPrompts.Length; i++) Assert.True(exactExpected[i].SequenceEqual(exactResults[i]), $"exact request {i}");
        for (int i = 0; i < approximate.Length; i++) Assert.True(approximateExpected[i].SequenceEqual(approximateResults[i]), $"{approximate[i].Strategy} request");
    }

    [Fact]
    public async Task ChatTurnsNeitherReuseNorKeepApproximateKv()
    {
        ChatMessage[] turn1 = [Msg("system", "Answer briefly."), LongUserMessage(from: 500)];
        var first = await _s.PostOk("/v1/chat/completions", Chat(turn1, longctx: Longctx("apb")));
        Assert.Equal("apb", Strategy(first));
        Assert.Equal(0, CachedTokens(first));

        // The apb turn's KV was not kept: the exact next turn prefills it all, and answers as an exact prefill does.
        ChatMessage[] turn2 = [.. turn1, Msg("assistant", Content(first)), Msg("user", "And then?")];
        var second = await _s.PostOk("/v1/chat/completions", Chat(turn2));
        Assert.Equal(0, CachedTokens(second));
        Assert.Equal(Expected(ChatTokens(turn2), StrategyNames.Auto), TestServer.TokenIds(second));

        // The exact turn's KV is kept, but a star turn that extends it starts over: star runs first turns only.
        ChatMessage[] turn3 = [.. turn2, Msg("assistant", Content(second)), Msg("user", "Why?")];
        var prompt3 = ChatTokens(turn3);
        var third = await _s.PostOk("/v1/chat/completions", Chat(turn3, longctx: Longctx("star")));
        Assert.Equal("star", Strategy(third));
        Assert.Equal(0, CachedTokens(third));
        Assert.Equal(prompt3.Length, third.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(Expected(prompt3, StrategyNames.Star, Split, Seeded), TestServer.TokenIds(third));
    }
}
