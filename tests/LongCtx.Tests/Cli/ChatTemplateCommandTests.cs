using System.Text.Json;
using System.Text.Json.Nodes;
using LongCtx.Tests.Engine;
using LongCtx.Tests.Text;

namespace LongCtx.Tests.Cli;

/// <summary>`longctx chat` renders each text line as a user turn of the chat template (--chat-template FILE over the model's own) and keeps the KV between turns.</summary>
public class ChatTemplateCommandTests
{
    private static readonly string ChatData = Path.Combine(TokenizerFixtures.RepoRoot, "tests", "data", "chat");

    [Fact]
    public void TextTurnsGoThroughTheTemplateAndReuseTheCache()
    {
        // Qwen2.5's template, whose rendering of [user "Hello!"] transformers' reference holds.
        var reference = JsonNode.Parse(File.ReadAllText(Path.Combine(ChatData, "qwen2_5.json")))!["cases"]!.AsArray()
            .Single(c => c!["name"]!.GetValue<string>() == "no_system")!;
        Assert.Equal("Hello!", reference["messages"]![0]!["content"]!.GetValue<string>());
        var r = CliRunner.RunWithInput("Hello!\nAnd then?\n", "chat", "--model", ReferenceModel.TinyLlama3.Directory,
            "--tokenizer", TokenizerFixtures.FetchedDir("llama3"), "--chat-template", Path.Combine(ChatData, "templates", "qwen2_5.jinja"),
            "--json", "--max-new-tokens", "3");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var turns = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal(2, turns.Length);
        int firstPrompt = turns[0].GetProperty("prompt_tokens").GetInt32();
        Assert.Equal(TokenizerFixtures.Llama3.Encode(reference["text"]!.GetValue<string>()).Length, firstPrompt);
        Assert.Equal(0, turns[0].GetProperty("cached_tokens").GetInt32());
        int generated = turns[0].GetProperty("token_ids").GetArrayLength();
        Assert.Equal(firstPrompt + generated - 1, turns[1].GetProperty("cached_tokens").GetInt32());
        Assert.True(turns[1].GetProperty("prompt_tokens").GetInt32() > firstPrompt + generated);
    }

    [Fact]
    public void AMissingTemplateFileIsOneLine()
    {
        var r = CliRunner.Run("chat", "--model", ReferenceModel.TinyLlama3.Directory, "--tokenizer", TokenizerFixtures.FetchedDir("llama3"),
            "--chat-template", "/no/such/template.jinja");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Equal("error: --chat-template /no/such/template.jinja: no such file", r.Stderr.Trim());
    }
}
