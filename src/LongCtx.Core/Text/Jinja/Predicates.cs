namespace LongCtx.Text.Jinja;

/// <summary>Jinja2's tests (<c>value is name(args)</c>): defined, none, string, mapping, iterable, equalto...</summary>
internal static class Predicates
{
    private static readonly Dictionary<string, Func<object?, CallArgs, bool>> All = new(StringComparer.Ordinal)
    {
        ["defined"] = (v, a) => None(a, "defined") && v is not Undefined,
        ["undefined"] = (v, a) => None(a, "undefined") && v is Undefined,
        ["none"] = (v, a) => None(a, "none") && v is null,
        ["boolean"] = (v, a) => None(a, "boolean") && v is bool,
        ["true"] = (v, a) => None(a, "true") && v is true,
        ["false"] = (v, a) => None(a, "false") && v is false,
        ["integer"] = (v, a) => None(a, "integer") && v is long,
        ["float"] = (v, a) => None(a, "float") && v is double,
        ["number"] = (v, a) => None(a, "number") && PyOps.IsNumber(v),
        ["string"] = (v, a) => None(a, "string") && v is string,
        ["mapping"] = (v, a) => None(a, "mapping") && v is PyDict,
        // Jinja2's Undefined iterates (as empty) and has a length, so it passes both.
        ["iterable"] = (v, a) => None(a, "iterable") && v is string or List<object?> or object?[] or PyDict or Undefined,
        ["sequence"] = (v, a) => None(a, "sequence") && v is string or List<object?> or object?[] or PyDict or Undefined,
        ["callable"] = (v, a) => None(a, "callable") && v is ICallable,
        ["escaped"] = (v, a) => None(a, "escaped") && false,
        ["sameas"] = (v, a) => SameAs(v, One(a, "sameas")),
        ["in"] = (v, a) => PyOps.Contains(One(a, "in"), v),
        ["eq"] = Compare("=="),
        ["equalto"] = Compare("=="),
        ["=="] = Compare("=="),
        ["ne"] = Compare("!="),
        ["!="] = Compare("!="),
        ["lt"] = Compare("<"),
        ["lessthan"] = Compare("<"),
        ["<"] = Compare("<"),
        ["le"] = Compare("<="),
        ["<="] = Compare("<="),
        ["gt"] = Compare(">"),
        ["greaterthan"] = Compare(">"),
        [">"] = Compare(">"),
        ["ge"] = Compare(">="),
        [">="] = Compare(">="),
        ["odd"] = (v, a) => None(a, "odd") && (PyOps.ToLong(v) & 1) == 1,
        ["even"] = (v, a) => None(a, "even") && (PyOps.ToLong(v) & 1) == 0,
        ["divisibleby"] = (v, a) => PyOps.Binary("%", v, One(a, "divisibleby")) is var r && PyOps.Equal(r, 0L),
        ["lower"] = (v, a) => None(a, "lower") && Filters.SoftStr(v) is var s && s.Any(char.IsLetter) && !s.Any(char.IsUpper),
        ["upper"] = (v, a) => None(a, "upper") && Filters.SoftStr(v) is var s && s.Any(char.IsLetter) && !s.Any(char.IsLower),
        ["filter"] = (v, a) => None(a, "filter") && v is string name && Filters.Exists(name),
        ["test"] = (v, a) => None(a, "test") && v is string name && All!.ContainsKey(name),
    };

    public static bool Exists(string name) => All.ContainsKey(name);

    public static bool Apply(string name, object? value, CallArgs args) =>
        All.TryGetValue(name, out var test) ? test(value, args) : throw new JinjaError($"no test named '{name}'");

    private static bool None(CallArgs a, string name)
    {
        a.Bind(name);
        return true;
    }

    private static object? One(CallArgs a, string name)
    {
        var p = a.Bind(name, "other");
        return p[0] == CallArgs.Missing ? throw new JinjaError($"test '{name}' needs an argument") : p[0];
    }

    private static Func<object?, CallArgs, bool> Compare(string op) => (v, a) => PyOps.Compare(op, v, One(a, op));

    /// <summary>Python's <c>is</c>: None, True and False are singletons; other values are the same object.</summary>
    private static bool SameAs(object? a, object? b) => a is null || b is null || a is bool || b is bool ? Equals(a, b) : ReferenceEquals(a, b);
}
