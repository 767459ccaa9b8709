using System.Globalization;
using System.Text.Json.Nodes;
using LongCtx.Server;
using LongCtx.Tests.Text;
using LongCtx.Text;
using LongCtx.Text.Jinja;

namespace LongCtx.Tests.Server;

/// <summary>
/// Each family's chat template (tests/data/chat/templates) renders its conversations as transformers'
/// apply_chat_template does (tests/data/chat/FAMILY.json, from bench/reference/make_chat_refs.py): the same text,
/// the same refusals (raise_exception) and, where the reference has them, the same ids from the family's tokenizer.
/// </summary>
public class ChatTemplateReferenceTests
{
    private static string ChatData => Path.Combine(TokenizerFixtures.RepoRoot, "tests", "data", "chat");

    public static TheoryData<string> Families()
    {
        var data = new TheoryData<string>();
        foreach (string file in Directory.GetFiles(ChatData, "*.json").Order())
            if (Path.GetFileName(file) != "jinja2-cases.json") data.Add(Path.GetFileNameWithoutExtension(file));
        return data;
    }

    internal static JsonObject Reference(string family) => (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(ChatData, family + ".json")))!;

    [Theory]
    [MemberData(nameof(Families))]
    public void RendersAsTransformers(string family)
    {
        var r = Reference(family);
        string source = r["template"]!.GetValue<string>();
        Assert.Equal(File.ReadAllText(Path.Combine(ChatData, "templates", r["template_file"]!.GetValue<string>())), source);
        var special = r["special_tokens"]!.AsObject().ToDictionary(kv => kv.Key, kv => (object?)kv.Value?.DeepClone());
        var template = ChatTemplate.Parse(source, family, special);
        var now = DateTime.Parse(r["now"]!.GetValue<string>(), CultureInfo.InvariantCulture);
        Tokenizer? tokenizer = null;
        foreach (var c in r["cases"]!.AsArray().Select(x => x!.AsObject()))
        {
            var messages = (JsonArray)c["messages"]!.DeepClone();
            bool generationPrompt = c["add_generation_prompt"]!.GetValue<bool>();
            var kwargs = c["kwargs"]!.AsObject().ToDictionary(kv => kv.Key, kv => (object?)kv.Value?.DeepClone());
            string Render() => template.RenderJson(messages, generationPrompt, kwargs, () => now);
            string name = c["name"]!.GetValue<string>();
            if (c["error"] is { } error)
            {
                var e = Assert.Throws<TemplateException>(Render);
                Assert.True(e.Raised, $"{family}/{name}: {e.Message}");
                Assert.Equal(error.GetValue<string>(), e.Detail);
                continue;
            }
            string text = c["text"]!.GetValue<string>();
            Assert.True(text == Render(), $"{family}/{name}: rendered\n{Render()}\nexpected\n{text}");
            if (c["ids"] is JsonArray ids)
            {
                tokenizer ??= Tokenizer.Load(TokenizerFixtures.FetchedDir(r["tokenizer"]!.GetValue<string>()));
                Assert.Equal(ids.Select(x => x!.GetValue<int>()), tokenizer.Encode(text));
            }
        }
    }

    [Theory]
    [InlineData("llama3")]
    [InlineData("qwen3")]
    public void SpecialTokensAreReadAsTransformersReadsThem(string family)
    {
        var r = Reference(family);
        var read = ChatTemplateFiles.SpecialTokens(TokenizerFixtures.FetchedDir(r["tokenizer"]!.GetValue<string>()));
        var expected = r["special_tokens"]!.AsObject()
            .Select(kv => (kv.Key, kv.Value is JsonArray a ? string.Join(" ", a.Select(x => x!.GetValue<string>())) : kv.Value!.GetValue<string>()));
        var actual = read.Select(kv => (kv.Key, kv.Value is List<object?> l ? string.Join(" ", l.Cast<string>()) : (string)kv.Value!));
        Assert.Equal(expected.Order(), actual.Order());
    }
}
