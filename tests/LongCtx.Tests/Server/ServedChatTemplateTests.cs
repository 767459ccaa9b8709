using System.Text.Json.Nodes;
using LongCtx.Server;
using LongCtx.Tests.Engine;
using LongCtx.Tests.Text;

namespace LongCtx.Tests.Server;

/// <summary>
/// The server renders chat through the template: tiny-llama3 served with Llama 3.1's template (--chat-template)
/// takes the prompt ids transformers' apply_chat_template(..., add_generation_prompt=True) gives, passes
/// chat_template_kwargs to the template, stops at the template's end of turn, and answers the template's
/// refusals with a 400 that quotes them.
/// </summary>
public class ServedChatTemplateTests : IAsyncLifetime
{
    private static readonly string Templates = Path.Combine(TokenizerFixtures.RepoRoot, "tests", "data", "chat", "templates");

    private TestServer _s = null!;

    public async Task InitializeAsync() =>
        _s = await TestServer.Start(ReferenceModel.TinyLlama3, templateFile: Path.Combine(Templates, "llama3_1.jinja"));

    public async Task DisposeAsync() => await _s.DisposeAsync();

    private static JsonObject Body(JsonNode messages, JsonObject? kwargs = null)
    {
        var body = new JsonObject { ["messages"] = messages.DeepClone(), ["max_tokens"] = 2, ["temperature"] = 0 };
        if (kwargs is not null) body["chat_template_kwargs"] = kwargs;
        return body;
    }

    private int[] PromptIds(JsonObject body, ServedModel? model = null) =>
        new RequestReader(model ?? _s.Model, new ServerOptions()).Read(JsonNode.Parse(body.ToJsonString()), chat: true).PromptTokens;

    /// <summary>The reference's ids where it has them, else its text through the Llama 3 tokenizer (held to Hugging Face's elsewhere).</summary>
    private static int[] ExpectedIds(JsonObject c) => c["ids"] is JsonArray ids
        ? ids.Select(x => x!.GetValue<int>()).ToArray()
        : TokenizerFixtures.Llama3.Encode(c["text"]!.GetValue<string>());

    [Fact]
    public async Task PromptIdsAreWhatApplyChatTemplateGives()
    {
        var cases = ChatTemplateReferenceTests.Reference("llama3_1")["cases"]!.AsArray().Select(c => c!.AsObject())
            .Where(c => c["add_generation_prompt"]!.GetValue<bool>() && c["text"] is not null && c["kwargs"]!.AsObject().Count == 0).ToList();
        Assert.True(cases.Count >= 6, $"only {cases.Count} llama3_1 references end in a generation prompt");
        foreach (var c in cases)
            Assert.Equal(ExpectedIds(c), PromptIds(Body(c["messages"]!)));

        var first = cases[0];
        var response = await _s.PostOk("/v1/chat/completions", Body(first["messages"]!).ToJsonString());
        Assert.Equal(ExpectedIds(first).Length, response.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Fact]
    public void ChatTemplateKwargsReachTheTemplate()
    {
        var c = ChatTemplateReferenceTests.Reference("llama3_1")["cases"]!.AsArray().Select(x => x!.AsObject()).Single(x => x["name"]!.GetValue<string>() == "no_system");
        string text = c["text"]!.GetValue<string>();
        Assert.Contains("Today Date: 26 Jul 2024", text);
        var ids = PromptIds(Body(c["messages"]!, new JsonObject { ["date_string"] = "01 Jan 2025" }));
        Assert.Equal(TokenizerFixtures.Llama3.Encode(text.Replace("26 Jul 2024", "01 Jan 2025")), ids);
    }

    [Fact]
    public async Task KwargsTheServerSetsAreRefused()
    {
        var body = Body(new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" }), new JsonObject { ["add_generation_prompt"] = false });
        var (status, error) = await _s.Post("/v1/chat/completions", body.ToJsonString());
        Assert.Equal(400, status);
        Assert.Equal("chat_template_kwargs.add_generation_prompt", error.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public void TheTemplatesEndOfTurnStopsAReply() => Assert.Contains(128009, _s.Model.StopTokens);

    [Fact]
    public void TheTemplatesRefusalIsABadRequestThatQuotesIt()
    {
        // Gemma 2's template refuses a system message.
        var gemma = new ServedModel("gemma", _s.Model.Engine, _s.Model.Tokenizer, ChatTemplate.Load(null, Path.Combine(Templates, "gemma2.jinja")));
        var body = Body(new JsonArray(new JsonObject { ["role"] = "system", ["content"] = "s" }, new JsonObject { ["role"] = "user", ["content"] = "u" }));
        var e = Assert.Throws<ApiException>(() => PromptIds(body, gemma));
        Assert.Equal(400, e.Status);
        Assert.Equal("the chat template refused the messages: System role not supported", e.Message);
    }
}
