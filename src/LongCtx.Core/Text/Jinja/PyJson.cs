using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LongCtx.Text.Jinja;

/// <summary>
/// Values in and out of templates: .NET and JSON values become Python-like template values, and
/// <see cref="Dumps"/> writes a value as Python's json.dumps does (the tojson filter of Hugging Face's chat
/// templates, which, unlike Jinja2's own, does not escape HTML characters).
/// </summary>
internal static class PyJson
{
    /// <summary>A .NET value as a template value: JSON nodes, dictionaries and sequences are converted; ints widen.</summary>
    public static object? Import(object? v) => v switch
    {
        null or bool or long or double or string or PyDict or Namespace or ICallable or Undefined => v,
        int i => (long)i,
        float f => (double)f,
        JsonNode node => FromJson(node),
        IEnumerable<KeyValuePair<string, object?>> map => ToDict(map.Select(kv => (kv.Key, Import(kv.Value)))),
        IEnumerable seq => seq.Cast<object?>().Select(Import).ToList(),
        _ => throw new ArgumentException($"a {v.GetType().Name} cannot be passed to a template"),
    };

    public static object? FromJson(JsonNode? node) => node switch
    {
        null => null,
        JsonObject o => ToDict(o.Select(kv => (kv.Key, FromJson(kv.Value)))),
        JsonArray a => a.Select(FromJson).ToList(),
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => v.GetValue<string>(),
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Number => Number(v),
            _ => null,
        },
        _ => null,
    };

    /// <summary>A JSON number as Python's json.loads reads it: an int when written without a fraction or exponent.</summary>
    private static object Number(JsonValue v)
    {
        if (v.TryGetValue(out JsonElement e)) return e.TryGetInt64(out long parsed) ? parsed : (object)e.GetDouble();
        if (v.TryGetValue(out long l)) return l;
        if (v.TryGetValue(out int i)) return (long)i;
        return v.GetValue<double>();
    }

    private static PyDict ToDict(IEnumerable<(string Key, object? Value)> items)
    {
        var d = new PyDict();
        foreach (var (k, v) in items) d[k] = v;
        return d;
    }

    /// <summary>json.dumps(value, ensure_ascii, indent, separators, sort_keys).</summary>
    public static string Dumps(object? value, bool ensureAscii = false, object? indent = null, object? separators = null, bool sortKeys = false)
    {
        string? indentText = indent switch
        {
            null => null,
            string s => s,
            _ when PyOps.IsInteger(indent) => new string(' ', (int)Math.Max(0, PyOps.ToLong(indent))),
            _ => throw new JinjaError($"tojson indent must be an int or a string, not {PyOps.TypeName(indent)}"),
        };
        var (itemSep, keySep) = (indentText is null ? ", " : ",", ": ");
        if (separators is not null)
        {
            var pair = PyOps.Iterate(separators);
            if (pair.Count != 2 || pair[0] is not string a || pair[1] is not string b) throw new JinjaError("tojson separators must be a pair of strings");
            (itemSep, keySep) = (a, b);
        }
        var sb = new StringBuilder();
        Write(sb, value, new Style(ensureAscii, indentText, itemSep, keySep, sortKeys), 0);
        return sb.ToString();
    }

    private sealed record Style(bool EnsureAscii, string? Indent, string ItemSeparator, string KeySeparator, bool SortKeys);

    private static void Write(StringBuilder sb, object? v, Style style, int depth)
    {
        switch (v)
        {
            case null: sb.Append("null"); return;
            case bool b: sb.Append(b ? "true" : "false"); return;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); return;
            case double d: sb.Append(Number(d)); return;
            case string s: WriteString(sb, s, style.EnsureAscii); return;
            case List<object?> or object?[]:
                var items = (IReadOnlyList<object?>)v;
                WriteContainer(sb, '[', ']', items.Count, style, depth, i => Write(sb, items[i], style, depth + 1));
                return;
            case PyDict dict:
                var pairs = dict.ToList();
                if (style.SortKeys) pairs.Sort((x, y) => PyOps.Order(x.Key, y.Key, "<"));
                WriteContainer(sb, '{', '}', pairs.Count, style, depth, i =>
                {
                    WriteString(sb, Key(pairs[i].Key), style.EnsureAscii);
                    sb.Append(style.KeySeparator);
                    Write(sb, pairs[i].Value, style, depth + 1);
                });
                return;
        }
        throw new JinjaError($"Object of type {PyOps.TypeName(v)} is not JSON serializable");
    }

    private static void WriteContainer(StringBuilder sb, char open, char close, int count, Style style, int depth, Action<int> item)
    {
        sb.Append(open);
        if (count == 0)
        {
            sb.Append(close);
            return;
        }
        for (int i = 0; i < count; i++)
        {
            if (i > 0) sb.Append(style.ItemSeparator);
            if (style.Indent is not null) sb.Append('\n').Insert(sb.Length, style.Indent, depth + 1);
            item(i);
        }
        if (style.Indent is not null) sb.Append('\n').Insert(sb.Length, style.Indent, depth);
        sb.Append(close);
    }

    private static string Key(object? k) => k switch
    {
        string s => s,
        null => "null",
        bool b => b ? "true" : "false",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => Number(d),
        _ => throw new JinjaError($"keys must be str, int, float, bool or None, not {PyOps.TypeName(k)}"),
    };

    private static string Number(double d) =>
        double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : PyText.FloatRepr(d);

    private static void WriteString(StringBuilder sb, string s, bool ensureAscii)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || ensureAscii && c > 0x7e) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
