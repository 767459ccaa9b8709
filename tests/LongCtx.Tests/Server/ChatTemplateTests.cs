using LongCtx.Server;
using LongCtx.Tests.Model;
using LongCtx.Tests.Text;
using LongCtx.Text.Jinja;

namespace LongCtx.Tests.Server;

/// <summary>
/// The model's chat template: found where transformers looks for it, rendered with the tokenizer's special tokens,
/// its end-of-turn token found, and encoded with the exact tokens of replies the server generated where the
/// template leaves them intact.
/// </summary>
public class ChatTemplateTests
{
    private static readonly ChatMessage[] Conversation = [new("system", "Be brief."), new("user", " Hi! "), new("assistant", "Hello."), new("user", "Bye")];

    private static ChatTemplate Load(string tokenizer) => ChatTemplate.Load(TokenizerFixtures.FetchedDir(tokenizer))!;

    [Fact]
    public void Llama3TemplateFromTokenizerConfigRendersMetasFormat() => Assert.Equal(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>" +
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>" +
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        Load("llama3").Render(Conversation));

    [Fact]
    public void Qwen3TemplateRendersChatMlAndItsThinkingSwitch()
    {
        const string chatMl = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n Hi! <|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n" +
                              "<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n";
        var template = Load("qwen3");
        Assert.Equal(chatMl, template.Render(Conversation));
        Assert.Equal(chatMl + "<think>\n\n</think>\n\n", template.Render(Conversation, kwargs: new Dictionary<string, object?> { ["enable_thinking"] = false }));
        Assert.Equal(chatMl, template.Render(Conversation, kwargs: new Dictionary<string, object?> { ["enable_thinking"] = true }));
    }

    [Fact]
    public void FoundWhereTransformersLooks()
    {
        using var dir = ModelFixtures.NewTempDir();
        Assert.Null(ChatTemplate.Load(dir.Path));
        File.WriteAllText(dir.File("tokenizer_config.json"), """{"chat_template": "config {{ messages | length }}", "bos_token": "<s>"}""");
        Assert.Equal("config 1", ChatTemplate.Load(dir.Path)!.Render([new("user", "x")]));
        // A tokenizer.json path names its directory.
        Assert.Equal("config 1", ChatTemplate.Load(dir.File("tokenizer.json"))!.Render([new("user", "x")]));
        File.WriteAllText(dir.File("chat_template.jinja"), "jinja file {{ bos_token }}");
        Assert.Equal("jinja file <s>", ChatTemplate.Load(dir.Path)!.Render([new("user", "x")]));
        string overriding = dir.File("mine.jinja");
        File.WriteAllText(overriding, "override {{ messages[0].content }}");
        var chosen = ChatTemplate.Load(dir.Path, overriding)!;
        Assert.Equal("override x", chosen.Render([new("user", "x")]));
        Assert.Equal(overriding, chosen.Name);
        var e = Assert.Throws<LongCtxException>(() => ChatTemplate.Load(dir.Path, dir.File("missing.jinja")));
        Assert.Contains("missing.jinja", e.Message);
    }

    [Fact]
    public void AListOfTemplatesUsesTheDefaultOne()
    {
        using var dir = ModelFixtures.NewTempDir();
        File.WriteAllText(dir.File("tokenizer_config.json"),
            """{"chat_template": [{"name": "tool_use", "template": "tools"}, {"name": "default", "template": "plain"}]}""");
        Assert.Equal("plain", ChatTemplate.Load(dir.Path)!.Render([new("user", "x")]));
        File.WriteAllText(dir.File("tokenizer_config.json"), """{"chat_template": [{"name": "tool_use", "template": "tools"}]}""");
        var e = Assert.Throws<LongCtxException>(() => ChatTemplate.Load(dir.Path));
        Assert.Contains("'tool_use'", e.Message);
        Assert.Contains("--chat-template", e.Message);
    }

    [Fact]
    public void SpecialTokensAreTheConfigsStringsOrContents()
    {
        using var dir = ModelFixtures.NewTempDir();
        File.WriteAllText(dir.File("tokenizer_config.json"),
            """{"chat_template": "{{ bos_token }}|{{ eos_token }}|{{ unk_token }}|{{ pad_token is defined }}", "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>"}""");
        File.WriteAllText(dir.File("special_tokens_map.json"), """{"unk_token": "<unk>", "eos_token": "ignored, the config has it"}""");
        Assert.Equal("<s>|</s>|<unk>|False", ChatTemplate.Load(dir.Path)!.Render([new("user", "x")]));
    }

    [Fact]
    public void ABadTemplateFailsAtLoadNamingItsFileAndLine()
    {
        using var dir = ModelFixtures.NewTempDir();
        File.WriteAllText(dir.File("chat_template.jinja"), "line one\n{% if %}");
        var e = Assert.Throws<TemplateException>(() => ChatTemplate.Load(dir.Path));
        Assert.StartsWith(dir.File("chat_template.jinja") + ", line 2: ", e.Message);
    }

    [Fact]
    public void EndOfTurnIsTheSpecialTokenAfterAReply()
    {
        Assert.Equal(128009, Load("llama3").EndOfTurnToken(TokenizerFixtures.Llama3));
        Assert.Equal(TokenizerFixtures.Qwen3.TokenToId("<|im_end|>"), Load("qwen3").EndOfTurnToken(TokenizerFixtures.Qwen3));
        Assert.Null(ChatTemplate.Parse("{% for m in messages %}{{ m.content }}\n{% endfor %}", "plain").EndOfTurnToken(TokenizerFixtures.Llama3));
    }

    [Fact]
    public void WithoutKnownRepliesThePromptIsTheRenderingEncodedWhole()
    {
        var template = Load("qwen3");
        var tokenizer = TokenizerFixtures.Qwen3;
        Assert.Equal(tokenizer.Encode(template.Render(Conversation)), ChatPrompt.Encode(template, tokenizer, Conversation, new ReplyTokens(4)));
    }

    [Fact]
    public void AKnownReplyKeepsItsGeneratedTokensWhereTheTemplateLeavesItIntact()
    {
        var template = Load("qwen3");
        var tokenizer = TokenizerFixtures.Qwen3;
        // Tokens a model could have generated for "Hello.", unlike the tokenizer's own encoding of the text.
        int[] generated = [.. tokenizer.Encode("H"), .. tokenizer.Encode("ello"), .. tokenizer.Encode(".")];
        Assert.NotEqual(tokenizer.Encode("Hello."), generated);
        var replies = new ReplyTokens(4);
        replies.Remember("Hello.", generated);

        string text = template.Render(Conversation);
        int at = text.IndexOf("Hello.", StringComparison.Ordinal);
        int[] expected = [.. tokenizer.Encode(text[..at]), .. generated, .. tokenizer.Encode(text[(at + "Hello.".Length)..])];
        Assert.Equal(expected, ChatPrompt.Encode(template, tokenizer, Conversation, replies));

        // Where the generated tokens are the text's own encoding, piece by piece equals whole: the pieces meet at special tokens.
        replies.Remember("Hello.", tokenizer.Encode("Hello."));
        Assert.Equal(tokenizer.Encode(text), ChatPrompt.Encode(template, tokenizer, Conversation, replies));
    }

    [Fact]
    public void AKnownReplyTheTemplateChangesIsEncodedAsRendered()
    {
        // Llama 3's template trims the reply; Qwen3's drops a reasoning block from earlier turns.
        var cases = new[]
        {
            (Load("llama3"), TokenizerFixtures.Llama3, " Hello. "),
            (Load("qwen3"), TokenizerFixtures.Qwen3, "<think>\nhmm\n</think>\n\nHello."),
        };
        foreach (var (template, tokenizer, reply) in cases)
        {
            ChatMessage[] conversation = [new("user", "Hi"), new("assistant", reply), new("user", "Bye")];
            var replies = new ReplyTokens(4);
            replies.Remember(reply, [.. tokenizer.Encode(reply), .. tokenizer.Encode("x")]);
            Assert.Equal(tokenizer.Encode(template.Render(conversation)), ChatPrompt.Encode(template, tokenizer, conversation, replies));
        }
    }
}
