using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace LongCtx.Text.Jinja;

/// <summary>Jinja2's built-in filters that chat templates use (<c>value | name(args)</c>), with Hugging Face's tojson.</summary>
internal static partial class Filters
{
    private static readonly Dictionary<string, Func<object?, CallArgs, object?>> All = new(StringComparer.Ordinal)
    {
        ["abs"] = (v, a) => { a.Bind("abs"); return v is double d ? Math.Abs(d) : (object)Math.Abs(PyOps.ToLong(v)); },
        ["attr"] = (v, a) => Attr(v, PyOps.Str(a.Bind("attr", "name")[0])),
        ["capitalize"] = (v, a) => { a.Bind("capitalize"); return PyText.Capitalize(SoftStr(v)); },
        ["count"] = (v, a) => { a.Bind("count"); return PyOps.Length(v); },
        ["d"] = Default,
        ["default"] = Default,
        ["dictsort"] = DictSort,
        ["e"] = (v, a) => { a.Bind("e"); return Escape(SoftStr(v)); },
        ["escape"] = (v, a) => { a.Bind("escape"); return Escape(SoftStr(v)); },
        ["first"] = (v, a) =>
        {
            a.Bind("first");
            var items = PyOps.Iterate(v);
            return items.Count > 0 ? items[0] : new Undefined("No first item, sequence was empty.");
        },
        ["float"] = (v, a) => ToFloat(v, CallArgs.Or<object?>(a.Bind("float", "default")[0], 0.0)),
        ["indent"] = Indent,
        ["int"] = ToInt,
        ["items"] = (v, a) =>
        {
            a.Bind("items");
            return v switch
            {
                Undefined => new List<object?>(),
                PyDict d => d.Select(kv => (object?)new object?[] { kv.Key, kv.Value }).ToList(),
                _ => throw new JinjaError("Can only get item pairs from a mapping."),
            };
        },
        ["join"] = (v, a) =>
        {
            var p = a.Bind("join", "d", "attribute");
            var items = PyOps.Iterate(v);
            if (p[1] != CallArgs.Missing && p[1] is not null) items = items.Select(AttributeGetter(p[1], null)).ToList();
            return string.Join(SoftStr(CallArgs.Or<object?>(p[0], "")), items.Select(SoftStr));
        },
        ["last"] = (v, a) =>
        {
            a.Bind("last");
            var items = PyOps.Iterate(v);
            return items.Count > 0 ? items[^1] : new Undefined("No last item, sequence was empty.");
        },
        ["length"] = (v, a) => { a.Bind("length"); return PyOps.Length(v); },
        ["list"] = (v, a) => { a.Bind("list"); return PyOps.Iterate(v).ToList(); },
        ["lower"] = (v, a) => { a.Bind("lower"); return SoftStr(v).ToLowerInvariant(); },
        ["map"] = Map,
        ["max"] = (v, a) => Extreme(v, a, "max"),
        ["min"] = (v, a) => Extreme(v, a, "min"),
        ["reject"] = (v, a) => Select(v, a, byAttribute: false, keep: false),
        ["rejectattr"] = (v, a) => Select(v, a, byAttribute: true, keep: false),
        ["replace"] = (v, a) =>
        {
            var p = a.Bind("replace", "old", "new", "count");
            long count = p[2] == CallArgs.Missing || p[2] is null ? -1 : PyOps.ToLong(p[2]);
            return PyText.Replace(SoftStr(v), SoftStr(p[0]), SoftStr(p[1]), count);
        },
        ["reverse"] = (v, a) =>
        {
            a.Bind("reverse");
            if (v is string s) return string.Concat(s.EnumerateRunes().Reverse().Select(r => r.ToString()));
            var items = PyOps.Iterate(v).ToList();
            items.Reverse();
            return items;
        },
        ["round"] = Round,
        ["safe"] = (v, a) => { a.Bind("safe"); return SoftStr(v); },
        ["select"] = (v, a) => Select(v, a, byAttribute: false, keep: true),
        ["selectattr"] = (v, a) => Select(v, a, byAttribute: true, keep: true),
        ["sort"] = Sort,
        ["string"] = (v, a) => { a.Bind("string"); return SoftStr(v); },
        ["sum"] = (v, a) =>
        {
            var p = a.Bind("sum", "attribute", "start");
            var items = PyOps.Iterate(v);
            if (p[0] != CallArgs.Missing && p[0] is not null) items = items.Select(AttributeGetter(p[0], null)).ToList();
            return items.Aggregate(CallArgs.Or<object?>(p[1], 0L), (acc, x) => PyOps.Binary("+", acc, x));
        },
        ["title"] = (v, a) => { a.Bind("title"); return Title(SoftStr(v)); },
        ["tojson"] = (v, a) =>
        {
            var p = a.Bind("tojson", "ensure_ascii", "indent", "separators", "sort_keys");
            return PyJson.Dumps(v, PyOps.Truthy(CallArgs.Or<object?>(p[0], false)), CallArgs.Or<object?>(p[1], null),
                CallArgs.Or<object?>(p[2], null), PyOps.Truthy(CallArgs.Or<object?>(p[3], false)));
        },
        ["trim"] = (v, a) =>
        {
            var chars = CallArgs.Or<object?>(a.Bind("trim", "chars")[0], null);
            return PyText.Strip(SoftStr(v), chars is null ? null : SoftStr(chars));
        },
        ["unique"] = Unique,
        ["upper"] = (v, a) => { a.Bind("upper"); return SoftStr(v).ToUpperInvariant(); },
        ["wordcount"] = (v, a) => { a.Bind("wordcount"); return (long)WordRegex().Count(SoftStr(v)); },
    };

    public static bool Exists(string name) => All.ContainsKey(name);

    public static object? Apply(string name, object? value, CallArgs args) =>
        All.TryGetValue(name, out var filter) ? filter(value, args) : throw new JinjaError($"no filter named '{name}'");

    /// <summary>str() as Jinja2's filters take it: an undefined value is the empty string.</summary>
    public static string SoftStr(object? v) => v as string ?? PyOps.Str(v);

    private static object? Default(object? v, CallArgs a)
    {
        var p = a.Bind("default", "default_value", "boolean");
        bool boolean = PyOps.Truthy(CallArgs.Or<object?>(p[1], false));
        return v is Undefined || boolean && !PyOps.Truthy(v) ? CallArgs.Or<object?>(p[0], "") : v;
    }

    private static object? Attr(object? owner, string name) => owner switch
    {
        Undefined u => throw u.Fail(),
        Namespace or LoopContext => PyOps.GetAttribute(owner, name),
        _ => Methods.Find(owner, name) ?? Undefined.Attribute(owner, name),
    };

    /// <summary>A getter for <c>attribute="a.b.0"</c>: item lookups along the dotted path (integers index).</summary>
    private static Func<object?, object?> AttributeGetter(object? attribute, object? fallback)
    {
        var parts = attribute is string s
            ? s.Split('.').Select(p => long.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out long i) ? (object?)i : p).ToArray()
            : new[] { attribute };
        return item =>
        {
            foreach (var part in parts) item = PyOps.GetItem(item, part);
            return fallback is not null && item is Undefined ? fallback : item;
        };
    }

    private static List<object?> Map(object? v, CallArgs a)
    {
        var items = PyOps.Iterate(v);
        if (a.Positional.Count == 0 && a.Named.Any(kv => kv.Key == "attribute"))
        {
            var p = a.Bind("map", "attribute", "default");
            return items.Select(AttributeGetter(p[0], CallArgs.Or<object?>(p[1], null))).ToList();
        }
        if (a.Positional.Count == 0 || a.Positional[0] is not string filter) throw new JinjaError("map requires a filter argument");
        var rest = new CallArgs(a.Positional.Skip(1).ToList(), a.Named);
        return items.Select(x => Apply(filter, x, rest)).ToList();
    }

    private static List<object?> Select(object? v, CallArgs a, bool byAttribute, bool keep)
    {
        var items = PyOps.Iterate(v);
        int next = 0;
        Func<object?, object?> get = x => x;
        if (byAttribute)
        {
            if (a.Positional.Count == 0) throw new JinjaError("Missing parameter for attribute name");
            get = AttributeGetter(a.Positional[0], null);
            next = 1;
        }
        Func<object?, bool> test = x => PyOps.Truthy(x);
        if (a.Positional.Count > next)
        {
            string name = a.Positional[next] as string ?? throw new JinjaError("the test of select/reject must be named by a string");
            var rest = new CallArgs(a.Positional.Skip(next + 1).ToList(), a.Named);
            test = x => Predicates.Apply(name, x, rest);
        }
        return items.Where(x => test(get(x)) == keep).ToList();
    }

    /// <summary>A sort key: strings lower-cased unless case-sensitive.</summary>
    private static object? CaseKey(object? x, bool caseSensitive) => !caseSensitive && x is string s ? s.ToLowerInvariant() : x;

    private static List<object?> Sort(object? v, CallArgs a)
    {
        var p = a.Bind("sort", "reverse", "case_sensitive", "attribute");
        bool reverse = PyOps.Truthy(CallArgs.Or<object?>(p[0], false)), caseSensitive = PyOps.Truthy(CallArgs.Or<object?>(p[1], false));
        var get = p[2] == CallArgs.Missing || p[2] is null ? (x => x) : AttributeGetter(p[2], null);
        var keyed = PyOps.Iterate(v).Select(x => (Key: CaseKey(get(x), caseSensitive), Item: x)).ToList();
        // Stable in both directions, as Python's sort: reverse the comparison, not the result.
        int sign = reverse ? -1 : 1;
        return keyed.Order(Comparer<(object? Key, object? Item)>.Create((x, y) => sign * PyOps.Order(x.Key, y.Key, "<"))).Select(x => x.Item).ToList();
    }

    private static List<object?> DictSort(object? v, CallArgs a)
    {
        var p = a.Bind("dictsort", "case_sensitive", "by", "reverse");
        if (v is not PyDict d) throw new JinjaError("dictsort works on a mapping");
        bool caseSensitive = PyOps.Truthy(CallArgs.Or<object?>(p[0], false)), reverse = PyOps.Truthy(CallArgs.Or<object?>(p[2], false));
        int by = CallArgs.Or<object?>(p[1], "key") switch
        {
            "key" => 0,
            "value" => 1,
            _ => throw new JinjaError("You can only sort by either \"key\" or \"value\""),
        };
        var pairs = d.Select(kv => new object?[] { kv.Key, kv.Value }).ToList();
        int sign = reverse ? -1 : 1;
        return pairs.Order(Comparer<object?[]>.Create((x, y) => sign * PyOps.Order(CaseKey(x[by], caseSensitive), CaseKey(y[by], caseSensitive), "<")))
            .Cast<object?>().ToList();
    }

    private static List<object?> Unique(object? v, CallArgs a)
    {
        var p = a.Bind("unique", "case_sensitive", "attribute");
        bool caseSensitive = PyOps.Truthy(CallArgs.Or<object?>(p[0], false));
        var get = p[1] == CallArgs.Missing || p[1] is null ? (x => x) : AttributeGetter(p[1], null);
        var seen = new List<object?>();
        var result = new List<object?>();
        foreach (var x in PyOps.Iterate(v))
        {
            var key = CaseKey(get(x), caseSensitive);
            if (seen.Any(s => PyOps.Equal(s, key))) continue;
            seen.Add(key);
            result.Add(x);
        }
        return result;
    }

    private static object? Extreme(object? v, CallArgs a, string which)
    {
        var p = a.Bind(which, "case_sensitive", "attribute");
        bool caseSensitive = PyOps.Truthy(CallArgs.Or<object?>(p[0], false));
        var get = p[1] == CallArgs.Missing || p[1] is null ? (x => x) : AttributeGetter(p[1], null);
        var items = PyOps.Iterate(v);
        if (items.Count == 0) return new Undefined("No aggregated item, sequence was empty.");
        var best = items[0];
        foreach (var x in items.Skip(1))
        {
            int order = PyOps.Order(CaseKey(get(x), caseSensitive), CaseKey(get(best), caseSensitive), "<");
            if (which == "max" ? order > 0 : order < 0) best = x;
        }
        return best;
    }

    private static object? Round(object? v, CallArgs a)
    {
        var p = a.Bind("round", "precision", "method");
        int precision = (int)PyOps.ToLong(CallArgs.Or<object?>(p[0], 0L));
        string method = SoftStr(CallArgs.Or<object?>(p[1], "common"));
        if (method == "common" && PyOps.IsInteger(v)) return PyOps.ToLong(v);
        double x = PyOps.ToDouble(v), scale = Math.Pow(10, precision);
        return method switch
        {
            "common" => Math.Round(x, Math.Clamp(precision, 0, 15), MidpointRounding.ToEven),
            "ceil" => Math.Ceiling(x * scale) / scale,
            "floor" => Math.Floor(x * scale) / scale,
            _ => throw new JinjaError("method must be common, ceil or floor"),
        };
    }

    private static string Indent(object? v, CallArgs a)
    {
        var p = a.Bind("indent", "width", "first", "blank");
        object? width = CallArgs.Or<object?>(p[0], 4L);
        string indention = width as string ?? new string(' ', (int)PyOps.ToLong(width));
        bool first = PyOps.Truthy(CallArgs.Or<object?>(p[1], false)), blank = PyOps.Truthy(CallArgs.Or<object?>(p[2], false));
        var lines = PyText.SplitLines(SoftStr(v) + "\n", keepEnds: false).Cast<string>().ToList();
        string rv = blank
            ? string.Join("\n" + indention, lines)
            : lines[0] + (lines.Count > 1 ? "\n" + string.Join("\n", lines.Skip(1).Select(l => l.Length > 0 ? indention + l : l)) : "");
        return first ? indention + rv : rv;
    }

    private static object? ToInt(object? v, CallArgs a)
    {
        var p = a.Bind("int", "default", "base");
        object? fallback = CallArgs.Or<object?>(p[0], 0L);
        int radix = (int)PyOps.ToLong(CallArgs.Or<object?>(p[1], 10L));
        switch (v)
        {
            case bool or long: return PyOps.ToLong(v);
            case double d: return double.IsFinite(d) ? (long)Math.Truncate(d) : fallback;
            case string s:
                string t = PyText.Strip(s).Replace("_", "");
                bool negative = t.StartsWith('-');
                if (t.StartsWith('-') || t.StartsWith('+')) t = t[1..];
                if (radix == 16 && t.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) t = t[2..];
                else if (radix == 8 && t.StartsWith("0o", StringComparison.OrdinalIgnoreCase)) t = t[2..];
                else if (radix == 2 && t.StartsWith("0b", StringComparison.OrdinalIgnoreCase)) t = t[2..];
                try
                {
                    if (t.Length > 0 && t.All(char.IsAsciiHexDigit)) { long n = Convert.ToInt64(t, radix); return negative ? -n : n; }
                }
                catch (Exception e) when (e is FormatException or ArgumentException or OverflowException) { }
                return ToFloat(s, null) is double f && double.IsFinite(f) ? (long)Math.Truncate(f) : fallback;
            default: return fallback;
        }
    }

    private static object? ToFloat(object? v, object? fallback)
    {
        switch (v)
        {
            case bool or long or double: return PyOps.ToDouble(v);
            case string s:
                string t = PyText.Strip(s).Replace("_", "").ToLowerInvariant();
                if (t is "inf" or "+inf" or "infinity" or "+infinity") return double.PositiveInfinity;
                if (t is "-inf" or "-infinity") return double.NegativeInfinity;
                if (t is "nan" or "+nan" or "-nan") return double.NaN;
                return double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) ? d : fallback;
            default: return fallback;
        }
    }

    private static string Escape(string s) =>
        s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&#34;").Replace("'", "&#39;");

    /// <summary>The title filter: each word (split at whitespace, '-', and opening brackets) capitalised.</summary>
    private static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (string item in TitleSplitRegex().Split(s))
            if (item.Length > 0) sb.Append(char.ToUpperInvariant(item[0])).Append(item[1..].ToLowerInvariant());
        return sb.ToString();
    }

    [GeneratedRegex(@"([-\s({\[<]+)")]
    private static partial Regex TitleSplitRegex();

    [GeneratedRegex(@"\w+")]
    private static partial Regex WordRegex();
}
