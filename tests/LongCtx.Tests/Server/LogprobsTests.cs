using System.Text;
using System.Text.Json;
using LongCtx.Server;
using LongCtx.Tests.Engine;
using LongCtx.Tests.Text;

namespace LongCtx.Tests.Server;

/// <summary>
/// Logprobs as OpenAI serves them: completions' legacy object (with echo, the prompt's too, as lm-eval's
/// loglikelihood requests read them) and chat's content list, against transformers' logits, whole and streamed.
/// </summary>
[Collection("server")]
public class LogprobsTests(LlamaServer fixture)
{
    private const double Tolerance = 1e-3;
    private TestServer S => fixture.Server;
    private static ReferenceModel Reference => ReferenceModel.TinyLlama3;
    private static int Vocab => Reference.Config.VocabSize;

    /// <summary>log_softmax(row)[token] in float64, as transformers' log_softmax over the reference logits.</summary>
    private static double LogSoftmax(ReadOnlySpan<float> row, int token)
    {
        double max = double.NegativeInfinity, sum = 0;
        foreach (float x in row) max = Math.Max(max, x);
        foreach (float x in row) sum += Math.Exp(x - max);
        return row[token] - max - Math.Log(sum);
    }

    /// <summary>Row r of the reference's logits: the position that predicts prompt token n - 3 + r (the last row, the first new token).</summary>
    private static ReadOnlySpan<float> ReferenceRow(int r) => Reference.LogitsLast4.AsSpan(r * Vocab, Vocab);

    private static JsonElement Logprobs(JsonElement response) => response.GetProperty("choices")[0].GetProperty("logprobs");

    private static double?[] TokenLogprobs(JsonElement logprobs) =>
        logprobs.GetProperty("token_logprobs").EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Null ? (double?)null : e.GetDouble()).ToArray();

    /// <summary>
    /// The logprobs of the whole reference prompt, echoed with logprobs 1: none for its first token; transformers'
    /// log-softmax for the last three; transformers' argmax heading every position's top_logprobs (rows in prompt order).
    /// </summary>
    internal static void AssertPromptLogprobsOfTransformers(JsonElement logprobs)
    {
        var prompt = Reference.InputIds;
        int n = prompt.Length;
        var values = TokenLogprobs(logprobs);
        Assert.Equal(n, values.Length);
        Assert.Null(values[0]);
        var tops = logprobs.GetProperty("top_logprobs").EnumerateArray().ToList();
        Assert.Equal(JsonValueKind.Null, tops[0].ValueKind);
        for (int r = 0; r < 3; r++)
            Assert.Equal(LogSoftmax(ReferenceRow(r), prompt[n - 3 + r]), values[n - 3 + r]!.Value, Tolerance);
        Assert.All(values[1..], v => Assert.True(v <= 0));
        var argmax = Reference.ArgmaxAll.Select(t => TokenText.Display(TokenizerFixtures.Llama3.TokenBytes(t, skipSpecial: false).ToArray()));
        Assert.Equal(argmax.Take(n - 1), tops.Skip(1).Select(t => t.EnumerateObject().First().Name));
    }

    [Fact]
    public async Task EchoWithNoNewTokensGivesThePromptsLogprobsOfTransformers()
    {
        var prompt = Reference.InputIds;
        var body = await S.PostOk("/v1/completions", TestServer.Json(new { prompt, max_tokens = 0, echo = true, logprobs = 1, temperature = 0 }));
        var choice = body.GetProperty("choices")[0];
        Assert.Equal(TokenizerFixtures.Llama3.Decode(prompt, skipSpecialTokens: true), choice.GetProperty("text").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(0, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Empty(TestServer.TokenIds(body));

        var logprobs = Logprobs(body);
        AssertPromptLogprobsOfTransformers(logprobs);
        // The prompt's emoji spans tokens: those show as their bytes.
        Assert.Equal(prompt.Select(t => TokenText.Display(TokenizerFixtures.Llama3.TokenBytes(t, skipSpecial: false).ToArray())),
            logprobs.GetProperty("tokens").EnumerateArray().Select(e => e.GetString()));
        Assert.Contains(logprobs.GetProperty("tokens").EnumerateArray(), e => e.GetString()!.StartsWith("bytes:"));
    }

    [Fact]
    public async Task GreedyCompletionsFirstTokenHasTheLogprobOfTransformers()
    {
        const int top = 5;
        var body = await S.PostOk("/v1/completions", TestServer.Json(new { prompt = Reference.InputIds, max_tokens = 4, temperature = 0, logprobs = top }));
        Assert.Equal(Reference.Greedy16[..4], TestServer.TokenIds(body));
        var logprobs = Logprobs(body);
        double expected = LogSoftmax(ReferenceRow(3), Reference.Greedy16[0]);
        Assert.Equal(expected, TokenLogprobs(logprobs)[0]!.Value, Tolerance);

        string first = logprobs.GetProperty("tokens")[0].GetString()!;
        Assert.Equal(TokenizerFixtures.Llama3.Decode([Reference.Greedy16[0]]), first);
        var tops = logprobs.GetProperty("top_logprobs").EnumerateArray().ToList();
        Assert.Equal(4, tops.Count);
        var best = tops[0].EnumerateObject().First();
        Assert.Equal(first, best.Name);
        Assert.Equal(expected, best.Value.GetDouble(), Tolerance);
        foreach (var position in tops)
        {
            var values = position.EnumerateObject().Select(p => p.Value.GetDouble()).ToList();
            Assert.Equal(top, values.Count);
            Assert.Equal(values.OrderDescending(), values);
            Assert.True(values.Sum(Math.Exp) <= 1 + 1e-6);
        }
        // Greedy: each token is its position's most likely one, so its logprob is the top value.
        Assert.Equal(tops.Select(t => t.EnumerateObject().First().Value.GetDouble()), TokenLogprobs(logprobs).Select(v => v!.Value));

        string text = body.GetProperty("choices")[0].GetProperty("text").GetString()!;
        var offsets = logprobs.GetProperty("text_offset").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        for (int i = 0; i < offsets.Length; i++)
            Assert.Equal(TokenizerFixtures.Llama3.Decode(Reference.Greedy16[..i], skipSpecialTokens: true).Length, offsets[i]);
        Assert.Equal(TokenizerFixtures.Llama3.Decode(Reference.Greedy16[..4], skipSpecialTokens: true), text);
    }

    /// <summary>What lm-eval's local-completions sends for a loglikelihood request: a batch of one tokenized prompt, echo, logprobs 1, max_tokens 1.</summary>
    [Fact]
    public async Task LmEvalLoglikelihoodRequest()
    {
        var prompt = Reference.InputIds[..300];
        var lmEval = await S.PostOk("/v1/completions", TestServer.Json(new
        {
            model = "tiny-llama3", prompt = new[] { prompt }, temperature = 0, max_tokens = 1, logprobs = 1, seed = 1234, echo = true,
        }));
        var scored = await S.PostOk("/v1/completions", TestServer.Json(new { prompt, max_tokens = 0, echo = true, logprobs = 1 }));
        var generated = await S.PostOk("/v1/completions", TestServer.Json(new { prompt, max_tokens = 1, temperature = 0, logprobs = 1 }));

        var all = Logprobs(lmEval);
        var values = TokenLogprobs(all);
        Assert.Equal(prompt.Length + 1, values.Length);
        Assert.Equal(TokenLogprobs(Logprobs(scored)), values[..^1]);
        Assert.Equal(TokenLogprobs(Logprobs(generated)), values[^1..]);
        string echoed = TokenizerFixtures.Llama3.Decode(prompt, skipSpecialTokens: true);
        Assert.Equal(echoed + generated.GetProperty("choices")[0].GetProperty("text").GetString(), lmEval.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(echoed.Length, all.GetProperty("text_offset")[prompt.Length].GetInt32());

        // lm-eval's is_greedy: the token's logprob is the largest of its position's top_logprobs (the token itself is always listed).
        var tops = all.GetProperty("top_logprobs").EnumerateArray().ToList();
        bool IsGreedy(int i)
        {
            var entries = tops[i].EnumerateObject().ToList();
            Assert.InRange(entries.Count, 1, 2);
            Assert.Contains(entries, e => e.Name == all.GetProperty("tokens")[i].GetString() && e.Value.GetDouble() == values[i]);
            return values[i] == entries.Max(e => e.Value.GetDouble());
        }
        for (int i = 1; i < prompt.Length; i++) Assert.Equal(Reference.ArgmaxAll[i - 1] == prompt[i], IsGreedy(i));
        Assert.True(IsGreedy(prompt.Length));
    }

    [Fact]
    public async Task ChatAndCompletionsGiveTheSameLogprobsForTheSameTokens()
    {
        const int top = 3;
        var messages = new[] { new { role = "user", content = "Name three rivers." } };
        var chat = await S.PostOk("/v1/chat/completions", TestServer.Json(new { messages, max_tokens = 6, temperature = 0, logprobs = true, top_logprobs = top }));
        string rendered = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nName three rivers.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
        var completion = await S.PostOk("/v1/completions",
            TestServer.Json(new { prompt = TokenizerFixtures.Llama3.Encode(rendered), max_tokens = 6, temperature = 0, logprobs = top }));
        Assert.Equal(TestServer.TokenIds(completion), TestServer.TokenIds(chat));

        var content = Logprobs(chat).GetProperty("content").EnumerateArray().ToList();
        var legacy = Logprobs(completion);
        Assert.Equal(TestServer.TokenIds(chat).Length, content.Count);
        for (int i = 0; i < content.Count; i++)
        {
            var entry = content[i];
            Assert.Equal(legacy.GetProperty("tokens")[i].GetString(), entry.GetProperty("token").GetString());
            Assert.Equal(legacy.GetProperty("token_logprobs")[i].GetDouble(), entry.GetProperty("logprob").GetDouble());
            var bytes = entry.GetProperty("bytes").EnumerateArray().Select(b => (byte)b.GetInt32()).ToArray();
            Assert.Equal(TokenizerFixtures.Llama3.TokenBytes(TestServer.TokenIds(chat)[i], skipSpecial: false).ToArray(), bytes);
            var chatTop = entry.GetProperty("top_logprobs").EnumerateArray().Select(t => (t.GetProperty("token").GetString()!, t.GetProperty("logprob").GetDouble())).ToList();
            Assert.Equal(top, chatTop.Count);
            Assert.Equal(legacy.GetProperty("top_logprobs")[i].EnumerateObject().Select(p => (p.Name, p.Value.GetDouble())), chatTop);
        }
    }

    /// <summary>
    /// Streams a completion and checks that its chunks' logprobs, concatenated, are the whole response's, and that each
    /// chunk carries only tokens whose text has gone out. Returns the most tokens one chunk carried.
    /// </summary>
    private async Task<int> StreamedEqualsWhole(Dictionary<string, object> body)
    {
        var whole = await S.PostOk("/v1/completions", TestServer.Json(body));
        var chunks = await S.Stream("/v1/completions", TestServer.Json(new Dictionary<string, object>(body) { ["stream"] = true }));

        var streamed = new Dictionary<string, List<string>> { ["tokens"] = [], ["token_logprobs"] = [], ["top_logprobs"] = [], ["text_offset"] = [] };
        var text = new StringBuilder();
        var sent = new List<(int[] Offsets, int TextSent)>();
        foreach (var chunk in chunks)
        {
            var choice = chunk.GetProperty("choices")[0];
            text.Append(choice.GetProperty("text").GetString());
            var logprobs = choice.GetProperty("logprobs");
            if (logprobs.ValueKind == JsonValueKind.Null) continue;
            foreach (var (field, list) in streamed) list.AddRange(logprobs.GetProperty(field).EnumerateArray().Select(e => e.GetRawText()));
            sent.Add((logprobs.GetProperty("text_offset").EnumerateArray().Select(o => o.GetInt32()).ToArray(), text.Length));
        }
        // Each token starts within the text sent so far (a piece of a character or a special token waits for the text after
        // it), but for the tokens of a stop sequence, whose text is cut: they come last.
        bool stopped = whole.GetProperty("choices")[0].GetProperty("finish_reason").GetString() == "stop";
        foreach (var (offsets, textSent) in stopped ? sent[..^1] : sent) Assert.All(offsets, o => Assert.True(o <= textSent));
        Assert.Equal(whole.GetProperty("choices")[0].GetProperty("text").GetString(), text.ToString());
        foreach (var (field, list) in streamed) Assert.Equal(Logprobs(whole).GetProperty(field).EnumerateArray().Select(e => e.GetRawText()), list);
        int expected = (body.ContainsKey("echo") ? whole.GetProperty("usage").GetProperty("prompt_tokens").GetInt32() : 0) + TestServer.TokenIds(whole).Length;
        Assert.Equal(expected, streamed["tokens"].Count);
        return sent.Max(c => c.Offsets.Length);
    }

    [Fact]
    public async Task StreamedCompletionChunksCarryTheLogprobsOfTheirText()
    {
        // Echo: the first chunk is the prompt with its logprobs.
        int most = await StreamedEqualsWhole(new() { ["prompt"] = Reference.InputIds[..200], ["max_tokens"] = 12, ["temperature"] = 0, ["logprobs"] = 2, ["echo"] = true });
        Assert.True(most >= 200);

        // The tiny model's greedy reply repeats the prompt's last token. A special token has no text: its entries wait for the end.
        var tokenizer = TokenizerFixtures.Llama3;
        int[] hello = tokenizer.Encode("Hello", addSpecialTokens: true);
        int special = tokenizer.TokenToId("<|reserved_special_token_78|>")!.Value;
        Assert.Equal(6, await StreamedEqualsWhole(new() { ["prompt"] = (int[])[.. hello, special], ["max_tokens"] = 6, ["temperature"] = 0, ["logprobs"] = 1 }));
        // The first two bytes of an emoji wait for the next token's bytes: one chunk carries both tokens.
        int lead = Enumerable.Range(0, tokenizer.VocabSize).First(id => tokenizer.TokenBytes(id, skipSpecial: false) is [0xF0, 0x9F]);
        Assert.Equal(2, await StreamedEqualsWhole(new() { ["prompt"] = (int[])[.. hello, lead], ["max_tokens"] = 6, ["temperature"] = 0, ["logprobs"] = 1 }));

        // A stop sequence holds text back and cuts it: the tokens that made it still have their entries.
        var prompt = Reference.InputIds[..300];
        string full = (await S.PostOk("/v1/completions", TestServer.Json(new { prompt, max_tokens = 8, temperature = 0 }))).GetProperty("choices")[0].GetProperty("text").GetString()!;
        string stop = full.Substring(full.Length / 2, 3);
        await StreamedEqualsWhole(new() { ["prompt"] = prompt, ["max_tokens"] = 8, ["temperature"] = 0, ["logprobs"] = 1, ["stop"] = stop });
        var cut = await S.PostOk("/v1/completions", TestServer.Json(new { prompt, max_tokens = 8, temperature = 0, logprobs = 1, stop }));
        Assert.Equal("stop", cut.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(TestServer.TokenIds(cut).Length, Logprobs(cut).GetProperty("tokens").GetArrayLength());
    }

    [Fact]
    public async Task StreamedChatChunksCarryTheLogprobsOfTheirText()
    {
        var body = new Dictionary<string, object>
        {
            ["messages"] = new[] { new { role = "user", content = "Count to five." } }, ["max_tokens"] = 10, ["temperature"] = 0, ["logprobs"] = true, ["top_logprobs"] = 2,
        };
        var whole = Logprobs(await S.PostOk("/v1/chat/completions", TestServer.Json(body)));
        body["stream"] = true;
        var chunks = await S.Stream("/v1/chat/completions", TestServer.Json(body));
        var streamed = chunks
            .Select(c => c.GetProperty("choices")[0].GetProperty("logprobs"))
            .Where(l => l.ValueKind != JsonValueKind.Null)
            .SelectMany(l => l.GetProperty("content").EnumerateArray().Select(e => e.GetRawText()));
        Assert.Equal(whole.GetProperty("content").EnumerateArray().Select(e => e.GetRawText()), streamed);
    }

    [Fact]
    public async Task WithoutLogprobsTheFieldIsNull()
    {
        var body = await S.PostOk("/v1/completions", TestServer.Json(new { prompt = Reference.InputIds[..50], max_tokens = 2, temperature = 0, echo = true }));
        Assert.Equal(JsonValueKind.Null, Logprobs(body).ValueKind);
        Assert.StartsWith(TokenizerFixtures.Llama3.Decode(Reference.InputIds[..50], skipSpecialTokens: true), body.GetProperty("choices")[0].GetProperty("text").GetString());
    }
}
