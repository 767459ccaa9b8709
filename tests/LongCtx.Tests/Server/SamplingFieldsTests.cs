using LongCtx.ContextParallel;
using LongCtx.Engine;
using LongCtx.Model;
using LongCtx.Sampling;
using LongCtx.Server;
using LongCtx.Tests.Engine;

namespace LongCtx.Tests.Server;

/// <summary>
/// The request fields that change how tokens are drawn: logit_bias, presence_penalty, frequency_penalty and
/// repetition_penalty act (the server's answer is the engine's with the same penalties, and not the answer without
/// them); bad values are a 400 naming the field; generation_config.json's sampling defaults and stop ids apply where a
/// request says nothing; --seed makes unseeded sampled requests repeat from one start to the next.
/// </summary>
[Collection("server")]
public class SamplingFieldsTests(LlamaServer fixture)
{
    private TestServer S => fixture.Server;
    private static readonly int[] Prompt = ReferenceModel.TinyLlama3.InputIds[..40];

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public async Task LogitBiasOf100DecidesEveryToken(double temperature)
    {
        var body = await S.PostOk("/v1/completions", $$$"""{"prompt": [{{{string.Join(",", Prompt)}}}], "max_tokens": 6, "temperature": {{{temperature}}}, "logit_bias": {"1234": 100}}""");
        Assert.Equal(Enumerable.Repeat(1234, 6), TestServer.TokenIds(body));
    }

    [Fact]
    public async Task PenaltiesGiveTheEnginesAnswerWithThem()
    {
        string prompt = string.Join(",", Prompt);
        var penalized = TestServer.TokenIds(await S.PostOk("/v1/completions",
            $$"""{"prompt": [{{prompt}}], "max_tokens": 12, "temperature": 0, "presence_penalty": 0.5, "frequency_penalty": 1.5, "repetition_penalty": 1.4}"""));
        var plain = TestServer.TokenIds(await S.PostOk("/v1/completions", $$"""{"prompt": [{{prompt}}], "max_tokens": 12, "temperature": 0}"""));

        var (engine, weights) = ReferenceModel.TinyLlama3.Open(1);
        using var _ = weights;
        using var __ = engine;
        var loop = new EngineLoop(engine);
        var run = loop.Admit(new GenerationRequest(Prompt, 12, new SamplingOptions { PresencePenalty = 0.5f, FrequencyPenalty = 1.5f, RepetitionPenalty = 1.4f },
            StrategyNames.Dense, StopTokens: S.Model.StopTokens.ToArray()));
        while (loop.HasWork) loop.Step(int.MaxValue);
        engine.Release(run.Sequence);
        Assert.Equal(run.Generated, penalized);
        Assert.NotEqual(plain, penalized);
    }

    [Theory]
    [InlineData(""" "presence_penalty": 2.5 """, "presence_penalty")]
    [InlineData(""" "frequency_penalty": -3 """, "frequency_penalty")]
    [InlineData(""" "frequency_penalty": "high" """, "frequency_penalty")]
    [InlineData(""" "repetition_penalty": 0 """, "repetition_penalty")]
    [InlineData(""" "logit_bias": {"abc": 1} """, "logit_bias")]
    [InlineData(""" "logit_bias": {"12": 101} """, "logit_bias")]
    [InlineData(""" "logit_bias": {"999999": 1} """, "logit_bias")]
    [InlineData(""" "logit_bias": [1, 2] """, "logit_bias")]
    public async Task BadValuesAre400NamingTheField(string field, string param)
    {
        var (status, error) = await S.Post("/v1/completions", $$"""{"prompt": [128000, 791], {{field}}}""");
        Assert.True(status == 400, $"{field}: {status} {error}");
        Assert.Equal(param, error.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task GenerationConfigFillsWhatTheRequestLeavesOut()
    {
        string prompt = string.Join(",", Prompt), asked = $$"""{"prompt": [{{prompt}}], "max_tokens": 8, "seed": 5}""";
        var greedy = TestServer.TokenIds(await S.PostOk("/v1/completions", $$"""{"prompt": [{{prompt}}], "max_tokens": 8, "temperature": 0}"""));
        // Without a file a request that names no temperature samples at OpenAI's 1; the file's 0 makes it greedy.
        Assert.NotEqual(greedy, TestServer.TokenIds(await S.PostOk("/v1/completions", asked)));
        await using (var greedyFile = await TestServer.Start(ReferenceModel.TinyLlama3, generation: new GenerationConfig([], 0f, null, null)))
        {
            Assert.Equal(greedy, TestServer.TokenIds(await greedyFile.PostOk("/v1/completions", asked)));
            // A request's own value wins.
            Assert.NotEqual(greedy, TestServer.TokenIds(await greedyFile.PostOk("/v1/completions", $$"""{"prompt": [{{prompt}}], "max_tokens": 8, "seed": 5, "temperature": 1}""")));
        }
        // The file's eos_token_id ends a generation.
        await using var stopFile = await TestServer.Start(ReferenceModel.TinyLlama3, generation: new GenerationConfig([greedy[0]], 0f, null, null));
        var body = await stopFile.PostOk("/v1/completions", asked);
        Assert.Equal(greedy[..1], TestServer.TokenIds(body));
        Assert.Equal("stop", body.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task ServerSeedRepeatsUnseededRequests()
    {
        const string request = """{"prompt": [128000, 791, 6864], "max_tokens": 10, "temperature": 1.5}""";
        async Task<int[][]> Answers(int seed)
        {
            await using var s = await TestServer.Start(ReferenceModel.TinyLlama3, options: new ServerOptions { Seed = seed });
            return [TestServer.TokenIds(await s.PostOk("/v1/completions", request)), TestServer.TokenIds(await s.PostOk("/v1/completions", request))];
        }
        var first = await Answers(3);
        var again = await Answers(3);
        Assert.Equal(first[0], again[0]);
        Assert.Equal(first[1], again[1]);
        Assert.NotEqual(first[0], first[1]); // each request draws its own numbers
    }
}
