using LongCtx.Tests.Text;

namespace LongCtx.Tests.Server;

/// <summary>/tokenize and /detokenize as vLLM serves them: a text's tokens (with the tokenizer's special tokens unless told otherwise), a chat's prompt tokens as a chat request counts them, and text back from tokens.</summary>
[Collection("server")]
public class TokenizeTests(LlamaServer fixture)
{
    private TestServer S => fixture.Server;

    [Fact]
    public async Task TextChatAndBack()
    {
        const string text = "The capital of France is Paris.";
        var tokens = await S.PostOk("/tokenize", TestServer.Json(new { prompt = text }));
        int[] ids = [.. tokens.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32())];
        Assert.Equal(TokenizerFixtures.Llama3.Encode(text, addSpecialTokens: true), ids);
        Assert.Equal(ids.Length, tokens.GetProperty("count").GetInt32());
        Assert.Equal(131072, tokens.GetProperty("max_model_len").GetInt32());
        var plain = await S.PostOk("/tokenize", TestServer.Json(new { prompt = text, add_special_tokens = false, return_token_strs = true }));
        int[] plainIds = [.. plain.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32())];
        Assert.Equal(TokenizerFixtures.Llama3.Encode(text), plainIds);
        Assert.Equal(text, string.Concat(plain.GetProperty("token_strs").EnumerateArray().Select(t => t.GetString())));

        // Special tokens are shown by name.
        Assert.Equal("<|begin_of_text|>" + text, (await S.PostOk("/detokenize", TestServer.Json(new { tokens = plainIds.Prepend(128000) }))).GetProperty("prompt").GetString());

        object[] messages = [new { role = "user", content = "Hi there" }];
        var chat = await S.PostOk("/tokenize", TestServer.Json(new { messages }));
        var answer = await S.PostOk("/v1/chat/completions", TestServer.Json(new { messages, max_tokens = 1 }));
        Assert.Equal(answer.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), chat.GetProperty("count").GetInt32());

        var (status, error) = await S.Post("/detokenize", """{"tokens": [1, 999999]}""");
        Assert.Equal(400, status);
        Assert.Equal("tokens", error.GetProperty("error").GetProperty("param").GetString());
    }
}
