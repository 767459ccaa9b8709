using System.Text;

namespace LongCtx.Text.Jinja;

/// <summary>
/// A Jinja template as Hugging Face transformers renders chat templates: Jinja2's ImmutableSandboxedEnvironment
/// with trim_blocks and lstrip_blocks, the loop controls (break, continue), the <c>{% generation %}</c> tag, the
/// globals raise_exception and strftime_now, and a tojson that writes JSON as Python's json.dumps does. Missing
/// variables are Jinja2's default Undefined. Parse once, render per request; a rendering shares nothing with
/// another, so one template may render on many threads at once.
/// </summary>
public sealed class JinjaTemplate
{
    private const int MaxRange = 100_000;

    private readonly IReadOnlyList<Stmt> _body;

    private JinjaTemplate(string name, IReadOnlyList<Stmt> body)
    {
        Name = name;
        _body = body;
    }

    /// <summary>Where the template came from, as error messages name it.</summary>
    public string Name { get; }

    /// <exception cref="TemplateException">The template does not parse.</exception>
    public static JinjaTemplate Parse(string source, string name = "template") => new(name, Parser.Parse(source, name));

    /// <summary>
    /// Renders with <paramref name="variables"/>: null, bool, int, long, double, string, JSON nodes, dictionaries
    /// with string keys and sequences. <paramref name="now"/> is strftime_now's clock (local time) when given.
    /// </summary>
    /// <exception cref="TemplateException">Rendering failed, or the template raised an exception of its own.</exception>
    public string Render(IReadOnlyDictionary<string, object?> variables, Func<DateTime>? now = null)
    {
        var root = new Scope(Globals(now ?? (() => DateTime.Now)));
        foreach (var (name, value) in variables) root.Set(name, PyJson.Import(value));
        var output = new StringBuilder();
        new Renderer(Name).Run(_body, root, output);
        return output.ToString();
    }

    private static Scope Globals(Func<DateTime> now)
    {
        var g = new Scope(null);
        g.Set("range", new Builtin("range", Range));
        g.Set("dict", new Builtin("dict", a =>
        {
            var d = a.Positional.Count switch
            {
                0 => new PyDict(),
                1 => Dict(a.Positional[0]),
                _ => throw new JinjaError("dict expected at most 1 argument"),
            };
            foreach (var (k, v) in a.Named) d[k] = v;
            return d;
        }));
        g.Set("namespace", new Builtin("namespace", a =>
        {
            var ns = new Namespace();
            foreach (var arg in a.Positional)
                foreach (var (k, v) in Dict(arg)) ns.Attributes[PyOps.Str(k)] = v;
            foreach (var (k, v) in a.Named) ns.Attributes[k] = v;
            return ns;
        }));
        g.Set("raise_exception", new Builtin("raise_exception", a =>
            throw TemplateException.FromTemplate(Filters.SoftStr(CallArgs.Or<object?>(a.Bind("raise_exception", "message")[0], "")))));
        g.Set("strftime_now", new Builtin("strftime_now", a =>
            Strftime.Format(now(), a.Bind("strftime_now", "format")[0] as string ?? throw new JinjaError("strftime_now() takes a format string"))));
        return g;
    }

    private static List<object?> Range(CallArgs a)
    {
        if (a.Named.Count > 0 || a.Positional.Count is 0 or > 3) throw new JinjaError("range expects 1 to 3 integer arguments");
        var n = a.Positional.Select(PyOps.ToLong).ToArray();
        var (start, stop, step) = n.Length switch
        {
            1 => (0, n[0], 1),
            2 => (n[0], n[1], 1L),
            _ => (n[0], n[1], n[2]),
        };
        if (step == 0) throw new JinjaError("range() arg 3 must not be zero");
        long count = step > 0 ? (stop - start + step - 1) / step : (start - stop - step - 1) / -step;
        if (count > MaxRange) throw new JinjaError($"Range too big. The sandbox blocks ranges larger than MAX_RANGE ({MaxRange}).");
        var items = new List<object?>();
        for (long i = 0; i < count; i++) items.Add(start + i * step);
        return items;
    }

    private static PyDict Dict(object? source)
    {
        if (source is PyDict d)
        {
            var copy = new PyDict();
            foreach (var (k, v) in d) copy[k] = v;
            return copy;
        }
        var result = new PyDict();
        foreach (var pair in PyOps.Iterate(source))
        {
            var kv = PyOps.Iterate(pair);
            if (kv.Count != 2 || kv[0] is null) throw new JinjaError("dictionary update sequence element has the wrong length");
            result[kv[0]!] = kv[1];
        }
        return result;
    }
}
