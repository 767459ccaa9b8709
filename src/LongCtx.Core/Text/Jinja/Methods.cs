namespace LongCtx.Text.Jinja;

/// <summary>
/// The Python methods templates call on strings, dicts and lists (<c>s.strip()</c>, <c>d.items()</c>...). As in
/// Jinja2's immutable sandbox, the methods that change a list or dict are refused.
/// </summary>
internal static class Methods
{
    private static readonly HashSet<string> UnsafeDict = ["clear", "pop", "popitem", "setdefault", "update"];
    private static readonly HashSet<string> UnsafeList = ["append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"];

    /// <summary>The bound method <paramref name="name"/> of <paramref name="owner"/>, an undefined value that refuses a mutating one, or null.</summary>
    public static object? Find(object? owner, string name) => owner switch
    {
        string s => StringMethod(s, name),
        PyDict d => UnsafeDict.Contains(name) ? Unsafe(owner, name) : DictMethod(d, name),
        List<object?> l => UnsafeList.Contains(name) ? Unsafe(owner, name) : SequenceMethod(l, name),
        object?[] t => SequenceMethod(t, name),
        _ => null,
    };

    private static Undefined Unsafe(object owner, string name) => new($"access to attribute '{name}' of '{PyOps.TypeName(owner)}' object is unsafe.");

    private static Builtin Method(string owner, string name, Func<CallArgs, object?> body) => new($"{owner}.{name}", body);

    private static Builtin? DictMethod(PyDict d, string name) => name switch
    {
        "items" => Method("dict", name, a => { a.Bind("dict.items"); return d.Select(kv => (object?)new object?[] { kv.Key, kv.Value }).ToList(); }),
        "keys" => Method("dict", name, a => { a.Bind("dict.keys"); return d.Keys.ToList<object?>(); }),
        "values" => Method("dict", name, a => { a.Bind("dict.values"); return d.Values.ToList(); }),
        "get" => Method("dict", name, a =>
        {
            var p = a.Bind("dict.get", "key", "default");
            if (p[0] == CallArgs.Missing) throw new JinjaError("dict.get() takes at least 1 argument");
            return p[0] is not null && d.TryGetValue(p[0]!, out var v) ? v : CallArgs.Or<object?>(p[1], null);
        }),
        "copy" => Method("dict", name, a =>
        {
            a.Bind("dict.copy");
            var copy = new PyDict();
            foreach (var (k, v) in d) copy[k] = v;
            return copy;
        }),
        _ => null,
    };

    private static Builtin? SequenceMethod(IReadOnlyList<object?> items, string name) => name switch
    {
        "index" => Method("list", name, a =>
        {
            var p = a.Bind("list.index", "value");
            for (int i = 0; i < items.Count; i++) if (PyOps.Equal(items[i], p[0])) return (long)i;
            throw new JinjaError($"{PyOps.Repr(p[0])} is not in list");
        }),
        "count" => Method("list", name, a => (long)items.Count(x => PyOps.Equal(x, a.Bind("list.count", "value")[0]))),
        "copy" => Method("list", name, a => { a.Bind("list.copy"); return items.ToList(); }),
        _ => null,
    };

    private static Builtin? StringMethod(string s, string name)
    {
        Func<CallArgs, object?>? body = name switch
        {
            "strip" => a => PyText.Strip(s, Chars(a, "str.strip")),
            "lstrip" => a => PyText.LStrip(s, Chars(a, "str.lstrip")),
            "rstrip" => a => PyText.RStrip(s, Chars(a, "str.rstrip")),
            "split" or "rsplit" => a =>
            {
                var p = a.Bind("str." + name, "sep", "maxsplit");
                string? sep = CallArgs.Or<string?>(p[0], null);
                long max = p[1] == CallArgs.Missing ? -1 : PyOps.ToLong(p[1]);
                return name == "split" ? PyText.Split(s, sep, max) : PyText.RSplit(s, sep, max);
            }
            ,
            "splitlines" => a => PyText.SplitLines(s, PyOps.Truthy(CallArgs.Or<object?>(a.Bind("str.splitlines", "keepends")[0], false))),
            "startswith" or "endswith" => a =>
            {
                var p = a.Bind("str." + name, "prefix", "start", "end");
                string part = Range(s, p[1], p[2]);
                IEnumerable<object?> options = p[0] is object?[] t ? t : [p[0]];
                return options.Any(o => o is string x
                    ? name == "startswith" ? part.StartsWith(x, StringComparison.Ordinal) : part.EndsWith(x, StringComparison.Ordinal)
                    : throw new JinjaError($"{name} first arg must be str or a tuple of str, not {PyOps.TypeName(o)}"));
            }
            ,
            "replace" => a =>
            {
                var p = a.Bind("str.replace", "old", "new", "count");
                return PyText.Replace(s, Text(p[0], "str.replace"), Text(p[1], "str.replace"), p[2] == CallArgs.Missing ? -1 : PyOps.ToLong(p[2]));
            }
            ,
            "upper" => a => { a.Bind("str.upper"); return s.ToUpperInvariant(); }
            ,
            "lower" => a => { a.Bind("str.lower"); return s.ToLowerInvariant(); }
            ,
            "casefold" => a => { a.Bind("str.casefold"); return s.ToLowerInvariant(); }
            ,
            "title" => a => { a.Bind("str.title"); return PyText.Title(s); }
            ,
            "capitalize" => a => { a.Bind("str.capitalize"); return PyText.Capitalize(s); }
            ,
            "swapcase" => a => { a.Bind("str.swapcase"); return new string(s.Select(c => char.IsUpper(c) ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c)).ToArray()); }
            ,
            "find" or "index" => a =>
            {
                var p = a.Bind("str." + name, "sub", "start", "end");
                long at = Find(s, Text(p[0], "str." + name), p[1], p[2], last: false);
                return at < 0 && name == "index" ? throw new JinjaError("substring not found") : at;
            }
            ,
            "rfind" or "rindex" => a =>
            {
                var p = a.Bind("str." + name, "sub", "start", "end");
                long at = Find(s, Text(p[0], "str." + name), p[1], p[2], last: true);
                return at < 0 && name == "rindex" ? throw new JinjaError("substring not found") : at;
            }
            ,
            "count" => a =>
            {
                string sub = Text(a.Bind("str.count", "sub")[0], "str.count");
                if (sub.Length == 0) return PyOps.Length(s) + 1;
                long n = 0;
                for (int i = s.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = s.IndexOf(sub, i + sub.Length, StringComparison.Ordinal)) n++;
                return n;
            }
            ,
            "join" => a => string.Join(s, PyOps.Iterate(a.Bind("str.join", "iterable")[0]).Select(x =>
                x as string ?? throw new JinjaError($"sequence item: expected str instance, {PyOps.TypeName(x)} found"))),
            "isdigit" or "isdecimal" or "isnumeric" => a => { a.Bind("str." + name); return s.Length > 0 && s.All(char.IsDigit); }
            ,
            "isalpha" => a => { a.Bind("str.isalpha"); return s.Length > 0 && s.All(char.IsLetter); }
            ,
            "isalnum" => a => { a.Bind("str.isalnum"); return s.Length > 0 && s.All(char.IsLetterOrDigit); }
            ,
            "isspace" => a => { a.Bind("str.isspace"); return s.Length > 0 && s.All(PyText.IsSpace); }
            ,
            "islower" => a => { a.Bind("str.islower"); return s.Any(char.IsLetter) && !s.Any(char.IsUpper); }
            ,
            "isupper" => a => { a.Bind("str.isupper"); return s.Any(char.IsLetter) && !s.Any(char.IsLower); }
            ,
            "removeprefix" => a => { string x = Text(a.Bind("str.removeprefix", "prefix")[0], name); return s.StartsWith(x, StringComparison.Ordinal) ? s[x.Length..] : s; }
            ,
            "removesuffix" => a => { string x = Text(a.Bind("str.removesuffix", "suffix")[0], name); return x.Length > 0 && s.EndsWith(x, StringComparison.Ordinal) ? s[..^x.Length] : s; }
            ,
            "zfill" => a =>
            {
                int width = (int)PyOps.ToLong(a.Bind("str.zfill", "width")[0]);
                if (s.Length >= width) return s;
                int sign = s.Length > 0 && s[0] is '+' or '-' ? 1 : 0;
                return s[..sign] + new string('0', width - s.Length) + s[sign..];
            }
            ,
            "center" or "ljust" or "rjust" => a =>
            {
                var p = a.Bind("str." + name, "width", "fillchar");
                int width = (int)PyOps.ToLong(p[0]), pad = width - s.Length;
                if (pad <= 0) return s;
                char fill = CallArgs.Or(p[1], " ")[0];
                int left = name == "rjust" ? pad : name == "ljust" ? 0 : pad / 2 + (pad & width & 1);
                return new string(fill, left) + s + new string(fill, pad - left);
            }
            ,
            "partition" or "rpartition" => a =>
            {
                string sep = Text(a.Bind("str." + name, "sep")[0], name);
                int at = name == "partition" ? s.IndexOf(sep, StringComparison.Ordinal) : s.LastIndexOf(sep, StringComparison.Ordinal);
                if (at < 0) return name == "partition" ? new object?[] { s, "", "" } : new object?[] { "", "", s };
                return new object?[] { s[..at], sep, s[(at + sep.Length)..] };
            }
            ,
            "format" => _ => throw new JinjaError("str.format is not supported"),
            _ => null,
        };
        return body is null ? null : Method("str", name, body);
    }

    private static string? Chars(CallArgs a, string function) => CallArgs.Or<object?>(a.Bind(function, "chars")[0], null) switch
    {
        null => null,
        string c => c,
        var other => throw new JinjaError($"{function} arg must be None or str, not {PyOps.TypeName(other)}"),
    };

    private static string Text(object? v, string function) =>
        v as string ?? throw new JinjaError($"{function}() expects a string argument, got {PyOps.TypeName(v)}");

    private static string Range(string s, object? start, object? end)
    {
        int n = s.Length;
        int Bound(object? v, int missing)
        {
            if (v == CallArgs.Missing || v is null) return missing;
            long x = PyOps.ToLong(v);
            if (x < 0) x += n;
            return (int)Math.Clamp(x, 0, n);
        }
        int from = Bound(start, 0), to = Bound(end, n);
        return to <= from ? "" : s[from..to];
    }

    private static long Find(string s, string sub, object? start, object? end, bool last)
    {
        int from = start == CallArgs.Missing || start is null ? 0 : (int)Math.Clamp(PyOps.ToLong(start) < 0 ? PyOps.ToLong(start) + s.Length : PyOps.ToLong(start), 0, s.Length);
        string part = Range(s, start, end);
        int at = last ? part.LastIndexOf(sub, StringComparison.Ordinal) : part.IndexOf(sub, StringComparison.Ordinal);
        return at < 0 ? -1 : at + from;
    }
}
