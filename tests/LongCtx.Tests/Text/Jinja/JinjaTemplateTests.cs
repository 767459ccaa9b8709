using LongCtx.Text.Jinja;

namespace LongCtx.Tests.Text.Jinja;

/// <summary>What Jinja2 itself cannot be the reference for: the errors' form, the bounds on runaway templates, .NET values in, and renders on many threads.</summary>
public class JinjaTemplateTests
{
    private static string Render(string source, Dictionary<string, object?>? vars = null) =>
        JinjaTemplate.Parse(source, "t").Render(vars ?? []);

    [Fact]
    public void ErrorsNameTheTemplateAndTheLine()
    {
        var parse = Assert.Throws<TemplateException>(() => JinjaTemplate.Parse("a\n{{ x + }}", "t"));
        Assert.StartsWith("t, line 2: ", parse.Message);
        var render = Assert.Throws<TemplateException>(() => Render("line one\n{{ 'a' + 1 }}"));
        Assert.Equal("t, line 2: can only concatenate str (not \"int\") to str", render.Message);
        Assert.False(render.Raised);
    }

    [Fact]
    public void RaiseExceptionCarriesTheTemplatesOwnMessage()
    {
        var e = Assert.Throws<TemplateException>(() => Render("{{ raise_exception('Only user and assistant roles are supported!') }}"));
        Assert.True(e.Raised);
        Assert.Equal("Only user and assistant roles are supported!", e.Message);
        Assert.Equal(e.Message, e.Detail);
    }

    [Fact]
    public void RunawayTemplatesFailInsteadOfOverflowing()
    {
        var deep = Assert.Throws<TemplateException>(() => Render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"));
        Assert.Contains("nested more than 256 calls deep", deep.Message);
        var wide = Assert.Throws<TemplateException>(() => Render("{{ range(200000) | length }}"));
        Assert.Contains("Range too big", wide.Message);
    }

    [Fact]
    public void DotNetValuesArePythonValues()
    {
        var vars = new Dictionary<string, object?>
        {
            ["n"] = 41, ["f"] = 0.5f, ["d"] = new Dictionary<string, object?> { ["k"] = "v" }, ["l"] = new[] { "a", "b" }, ["nothing"] = null,
        };
        Assert.Equal("42 0.5 v a,b ['a', 'b'] None True", Render("{{ n + 1 }} {{ f }} {{ d.k }} {{ l | join(',') }} {{ l }} {{ nothing }} {{ nothing is none }}", vars));
    }

    [Fact]
    public void OneTemplateRendersOnManyThreadsAtOnce()
    {
        var template = JinjaTemplate.Parse(
            "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + m | length %}[{{ loop.index }}:{{ m }}]{% endfor %}{{ ns.n }}", "t");
        string Expected(int i) => string.Concat(Enumerable.Range(0, i % 7).Select(k => $"[{k + 1}:{new string('x', i + k)}]")) +
                                  Enumerable.Range(0, i % 7).Sum(k => i + k);
        var results = new string[200];
        System.Threading.Tasks.Parallel.For(0, results.Length, i =>
            results[i] = template.Render(new Dictionary<string, object?> { ["messages"] = Enumerable.Range(0, i % 7).Select(k => new string('x', i + k)).ToList() }));
        for (int i = 0; i < results.Length; i++) Assert.Equal(Expected(i), results[i]);
    }
}
