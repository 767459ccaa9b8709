using LongCtx.Server;
using LongCtx.Tests.Text;

namespace LongCtx.Tests.Server;

/// <summary>The chat formats render as the models' own templates do, and are found from the tokenizer.</summary>
public class ChatTemplateTests
{
    private static readonly ChatMessage[] Conversation = [new("system", "Be brief."), new("user", " Hi! "), new("assistant", "Hello."), new("user", "Bye")];

    [Fact]
    public void Llama3RendersMetasFormat() => Assert.Equal(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>" +
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>" +
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        ChatTemplate.Llama3.Render(Conversation));

    [Fact]
    public void ChatMlRendersQwensFormat() => Assert.Equal(
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n Hi! <|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n" +
        "<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n",
        ChatTemplate.ChatMl.Render(Conversation));

    [Fact]
    public void DetectedFromTokenizerConfigOrVocabulary()
    {
        Assert.Same(ChatTemplate.Llama3, ChatTemplate.Detect(TokenizerFixtures.Llama3, TokenizerFixtures.FetchedDir("llama3")));
        Assert.Same(ChatTemplate.ChatMl, ChatTemplate.Detect(TokenizerFixtures.Qwen3, TokenizerFixtures.FetchedDir("qwen3")));
        Assert.Same(ChatTemplate.ChatMl, ChatTemplate.Detect(TokenizerFixtures.Qwen3, tokenizerPath: null));
    }

    [Fact]
    public void UnknownTemplateIsNone()
    {
        using var dir = LongCtx.Tests.Model.ModelFixtures.NewTempDir();
        File.WriteAllText(dir.File("tokenizer_config.json"), """{"chat_template": "{% for m in messages %}### {{ m.role }}: {{ m.content }}\n{% endfor %}"}""");
        Assert.Null(ChatTemplate.Detect(TokenizerFixtures.Llama3, dir.Path));
    }

    [Fact]
    public void PiecewiseEncodingEqualsEncodingTheRenderedPrompt()
    {
        var tokenizer = TokenizerFixtures.Qwen3;
        Assert.Equal(tokenizer.Encode(ChatTemplate.ChatMl.Render(Conversation)), ChatPrompt.Encode(ChatTemplate.ChatMl, tokenizer, Conversation, new ReplyTokens(4)));
    }
}
