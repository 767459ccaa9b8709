using System.Globalization;
using System.Text.Json.Nodes;
using LongCtx.Text.Jinja;

namespace LongCtx.Tests.Text.Jinja;

/// <summary>
/// One construct per case, each rendered by Jinja2 itself in transformers' chat-template environment
/// (tests/data/chat/jinja2-cases.json, from bench/reference/make_jinja_cases.py): the interpreter must print
/// the same text, or fail where Jinja2 fails (with the same message where the case says so).
/// </summary>
public class Jinja2CasesTests
{
    private static readonly Lazy<JsonObject> Reference = new(() =>
        (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(TokenizerFixtures.RepoRoot, "tests", "data", "chat", "jinja2-cases.json")))!);

    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (var c in Reference.Value["cases"]!.AsArray()) data.Add(c!["name"]!.GetValue<string>());
        return data;
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void RendersAsJinja2(string name)
    {
        var c = Reference.Value["cases"]!.AsArray().Single(x => x!["name"]!.GetValue<string>() == name)!;
        var now = DateTime.Parse(Reference.Value["now"]!.GetValue<string>(), CultureInfo.InvariantCulture);
        var vars = c["vars"]!.AsObject().ToDictionary(kv => kv.Key, kv => (object?)kv.Value?.DeepClone());
        string template = c["template"]!.GetValue<string>();
        string Render() => JinjaTemplate.Parse(template, name).Render(vars, () => now);

        if (c["output"] is { } output)
        {
            Assert.Equal(output.GetValue<string>(), Render());
            return;
        }
        var e = Assert.Throws<TemplateException>(Render);
        if (c["exact_error"]!.GetValue<bool>()) Assert.Equal(c["error"]!.GetValue<string>(), e.Detail);
    }
}
