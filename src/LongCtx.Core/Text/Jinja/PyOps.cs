using System.Globalization;
using System.Text;

namespace LongCtx.Text.Jinja;

/// <summary>Python's operations on template values: truth, str and repr, equality and order, arithmetic, len, in, iteration, attributes and items.</summary>
internal static class PyOps
{
    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        object?[] => "tuple",
        PyDict => "dict",
        Undefined => "Undefined",
        Namespace => "Namespace",
        LoopContext => "LoopContext",
        PySlice => "slice",
        ICallable => "function",
        _ => v.GetType().Name,
    };

    public static bool Truthy(object? v) => v switch
    {
        null => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        object?[] t => t.Length > 0,
        PyDict d => d.Count > 0,
        Undefined => false,
        _ => true,
    };

    /// <summary>str(v), what <c>{{ v }}</c> prints.</summary>
    public static string Str(object? v) => v switch
    {
        null => "None",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => PyText.FloatRepr(d),
        string s => s,
        Undefined => "",
        List<object?> l => "[" + string.Join(", ", l.Select(Repr)) + "]",
        object?[] t => t.Length == 1 ? "(" + Repr(t[0]) + ",)" : "(" + string.Join(", ", t.Select(Repr)) + ")",
        PyDict d => "{" + string.Join(", ", d.Select(kv => Repr(kv.Key) + ": " + Repr(kv.Value))) + "}",
        Namespace ns => "<Namespace " + string.Join(", ", ns.Attributes.Select(kv => kv.Key + "=" + Repr(kv.Value))) + ">",
        ICallable c => $"<function {c.Name}>",
        _ => $"<{TypeName(v)}>",
    };

    public static string Repr(object? v) => v switch
    {
        string s => PyText.Repr(s),
        Undefined => "Undefined",
        _ => Str(v),
    };

    public static bool IsNumber(object? v) => v is bool or long or double;

    public static bool IsInteger(object? v) => v is bool or long;

    public static double ToDouble(object? v) => v switch
    {
        bool b => b ? 1 : 0,
        long l => l,
        double d => d,
        _ => throw new JinjaError($"expected a number, got {TypeName(v)}"),
    };

    public static long ToLong(object? v) => v switch
    {
        bool b => b ? 1 : 0,
        long l => l,
        _ => throw new JinjaError($"expected an integer, got {TypeName(v)}"),
    };

    public static bool Equal(object? a, object? b)
    {
        if (a is null || b is null) return a is null && b is null;
        if (IsNumber(a) && IsNumber(b)) return a is double || b is double ? ToDouble(a) == ToDouble(b) : ToLong(a) == ToLong(b);
        return a switch
        {
            string s => b is string t && s == t,
            List<object?> l => b is List<object?> m && SequenceEqual(l, m),
            object?[] x => b is object?[] y && SequenceEqual(x, y),
            PyDict d => b is PyDict e && d.Count == e.Count && d.All(kv => e.TryGetValue(kv.Key, out var v) && Equal(kv.Value, v)),
            Undefined => b is Undefined,
            _ => ReferenceEquals(a, b),
        };
    }

    private static bool SequenceEqual(IReadOnlyList<object?> a, IReadOnlyList<object?> b)
    {
        if (a.Count != b.Count) return false;
        for (int i = 0; i < a.Count; i++) if (!Equal(a[i], b[i])) return false;
        return true;
    }

    /// <summary>The order of two values for &lt; &lt;= &gt; &gt;=: numbers, strings (by code point) and sequences; anything else is a type error.</summary>
    public static int Order(object? a, object? b, string op)
    {
        if (a is Undefined ua) throw ua.Fail();
        if (b is Undefined ub) throw ub.Fail();
        if (IsNumber(a) && IsNumber(b))
            return a is double || b is double ? ToDouble(a).CompareTo(ToDouble(b)) : ToLong(a).CompareTo(ToLong(b));
        if (a is string s && b is string t) return CompareCodePoints(s, t);
        if (a is List<object?> && b is List<object?> || a is object?[] && b is object?[])
        {
            var x = (IReadOnlyList<object?>)a;
            var y = (IReadOnlyList<object?>)b;
            for (int i = 0; i < Math.Min(x.Count, y.Count); i++)
                if (!Equal(x[i], y[i])) return Order(x[i], y[i], op);
            return x.Count.CompareTo(y.Count);
        }
        throw new JinjaError($"'{op}' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    private static int CompareCodePoints(string s, string t)
    {
        int i = 0, j = 0;
        while (i < s.Length && j < t.Length)
        {
            Rune.DecodeFromUtf16(s.AsSpan(i), out var r, out int n);
            Rune.DecodeFromUtf16(t.AsSpan(j), out var q, out int m);
            if (r != q) return r.Value.CompareTo(q.Value);
            i += n;
            j += m;
        }
        return (s.Length - i).CompareTo(t.Length - j);
    }

    public static bool Compare(string op, object? a, object? b) => op switch
    {
        "==" => Equal(a, b),
        "!=" => !Equal(a, b),
        "<" => !IsNaN(a, b) && Order(a, b, op) < 0,
        "<=" => !IsNaN(a, b) && Order(a, b, op) <= 0,
        ">" => !IsNaN(a, b) && Order(a, b, op) > 0,
        ">=" => !IsNaN(a, b) && Order(a, b, op) >= 0,
        "in" => Contains(b, a),
        "notin" => !Contains(b, a),
        _ => throw new JinjaError($"unknown comparison '{op}'"),
    };

    private static bool IsNaN(object? a, object? b) => a is double x && double.IsNaN(x) || b is double y && double.IsNaN(y);

    /// <summary><c>item in container</c>.</summary>
    public static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string t ? s.Contains(t, StringComparison.Ordinal)
            : throw new JinjaError($"'in <string>' requires string as left operand, not {TypeName(item)}"),
        List<object?> l => l.Any(x => Equal(x, item)),
        object?[] t => t.Any(x => Equal(x, item)),
        PyDict d => item is not null && d.ContainsKey(item),
        Undefined => false,
        _ => throw new JinjaError($"argument of type '{TypeName(container)}' is not iterable"),
    };

    public static object? Binary(string op, object? a, object? b)
    {
        if (a is Undefined ua) throw ua.Fail();
        if (b is Undefined ub) throw ub.Fail();
        if (IsNumber(a) && IsNumber(b)) return Arithmetic(op, a!, b!);
        switch (op)
        {
            case "+" when a is string s && b is string t: return s + t;
            case "+" when a is List<object?> l && b is List<object?> m: return (List<object?>)[.. l, .. m];
            case "+" when a is object?[] x && b is object?[] y: return (object?[])[.. x, .. y];
            case "*" when a is string s && IsInteger(b): return Repeat(s, ToLong(b));
            case "*" when IsInteger(a) && b is string t: return Repeat(t, ToLong(a));
            case "*" when a is List<object?> l && IsInteger(b): return Enumerable.Repeat(l, (int)Math.Max(0, ToLong(b))).SelectMany(x => x).ToList();
            case "%" when a is string: throw new JinjaError("string formatting with '%' is not supported");
        }
        if (op == "+" && a is string) throw new JinjaError($"can only concatenate str (not \"{TypeName(b)}\") to str");
        if (op == "+" && a is List<object?>) throw new JinjaError($"can only concatenate list (not \"{TypeName(b)}\") to list");
        throw new JinjaError($"unsupported operand type(s) for {op}: '{TypeName(a)}' and '{TypeName(b)}'");
    }

    private static string Repeat(string s, long n) => n <= 0 ? "" : new StringBuilder(s.Length * (int)n).Insert(0, s, (int)n).ToString();

    private static object Arithmetic(string op, object a, object b)
    {
        bool integers = IsInteger(a) && IsInteger(b);
        if (integers && op is "+" or "-" or "*" or "//" or "%" or "**")
        {
            long x = ToLong(a), y = ToLong(b);
            try
            {
                checked
                {
                    switch (op)
                    {
                        case "+": return x + y;
                        case "-": return x - y;
                        case "*": return x * y;
                        case "//": return y == 0 ? throw new JinjaError("integer division or modulo by zero") : FloorDiv(x, y);
                        case "%": return y == 0 ? throw new JinjaError("integer division or modulo by zero") : x - y * FloorDiv(x, y);
                        case "**" when y >= 0:
                            long r = 1;
                            for (long i = 0; i < y; i++) r *= x;
                            return r;
                    }
                }
            }
            catch (OverflowException) { }
        }
        double p = ToDouble(a), q = ToDouble(b);
        switch (op)
        {
            case "+": return p + q;
            case "-": return p - q;
            case "*": return p * q;
            case "/": return q == 0 ? throw new JinjaError("division by zero") : p / q;
            case "//": return q == 0 ? throw new JinjaError("float floor division by zero") : Math.Floor(p / q);
            case "%": return q == 0 ? throw new JinjaError("float modulo") : p - q * Math.Floor(p / q);
            case "**": return Math.Pow(p, q);
        }
        throw new JinjaError($"unknown operator '{op}'");
    }

    private static long FloorDiv(long x, long y)
    {
        long q = x / y;
        return (x % y != 0 && (x < 0) != (y < 0)) ? q - 1 : q;
    }

    public static object? Negate(object? v) => v switch
    {
        Undefined u => throw u.Fail(),
        bool or long => (object)checked(-ToLong(v)),
        double d => -d,
        _ => throw new JinjaError($"bad operand type for unary -: '{TypeName(v)}'"),
    };

    public static long Length(object? v) => v switch
    {
        string s => CodePointCount(s),
        List<object?> l => l.Count,
        object?[] t => t.Length,
        PyDict d => d.Count,
        Undefined => 0,
        _ => throw new JinjaError($"object of type '{TypeName(v)}' has no len()"),
    };

    private static long CodePointCount(string s)
    {
        long n = s.Length;
        foreach (char c in s) if (char.IsLowSurrogate(c)) n--;
        return n;
    }

    /// <summary>The items <c>for x in v</c> visits: a dict's keys, a string's characters.</summary>
    public static IReadOnlyList<object?> Iterate(object? v) => v switch
    {
        List<object?> l => l,
        object?[] t => t,
        PyDict d => d.Keys.ToList<object?>(),
        string s => s.EnumerateRunes().Select(r => (object?)r.ToString()).ToList(),
        Undefined => [],
        _ => throw new JinjaError($"'{TypeName(v)}' object is not iterable"),
    };

    /// <summary><c>x.name</c>: an attribute (a method, a namespace's value), else the item of that name.</summary>
    public static object? GetAttribute(object? owner, string name)
    {
        switch (owner)
        {
            case Undefined u: throw u.Fail();
            case Namespace ns: return ns.Attributes.TryGetValue(name, out var v) ? v : Undefined.Attribute(owner, name);
            case LoopContext loop: return loop.Get(name);
        }
        if (Methods.Find(owner, name) is { } method) return method;
        return owner is PyDict d && d.TryGetValue(name, out var value) ? value : Undefined.Attribute(owner, name);
    }

    /// <summary><c>x[key]</c>: the item (an index, a slice or a dict key), else the attribute when the key is a string.</summary>
    public static object? GetItem(object? owner, object? key)
    {
        switch (owner)
        {
            case Undefined u: throw u.Fail();
            case PyDict d when key is not null && key is not (List<object?> or PyDict) && d.TryGetValue(key, out var v): return v;
            case List<object?> or object?[] or string when key is PySlice slice: return Slice(owner, slice);
            case List<object?> l when IsInteger(key): return Index(l, ToLong(key), owner, key);
            case object?[] t when IsInteger(key): return Index(t, ToLong(key), owner, key);
            case string s when IsInteger(key):
                var runes = s.EnumerateRunes().ToList();
                long i = ToLong(key);
                if (i < 0) i += runes.Count;
                return i >= 0 && i < runes.Count ? runes[(int)i].ToString() : Undefined.Element(owner, key);
        }
        return key is string name ? GetAttribute(owner, name) : Undefined.Element(owner, key);
    }

    private static object? Index(IReadOnlyList<object?> list, long i, object? owner, object? key)
    {
        if (i < 0) i += list.Count;
        return i >= 0 && i < list.Count ? list[(int)i] : Undefined.Element(owner, key);
    }

    private static object Slice(object owner, PySlice slice)
    {
        if (owner is string s)
        {
            var runes = s.EnumerateRunes().ToArray();
            var sb = new StringBuilder();
            foreach (int i in slice.Indices(runes.Length)) sb.Append(runes[i].ToString());
            return sb.ToString();
        }
        var items = (IReadOnlyList<object?>)owner;
        var picked = slice.Indices(items.Count).Select(i => items[i]);
        bool tuple = owner is object?[];
        return tuple ? picked.ToArray() : picked.ToList();
    }
}

/// <summary>A slice, start:stop:step, with Python's rules for missing and negative bounds.</summary>
internal sealed record PySlice(long? Start, long? Stop, long? Step)
{
    public IEnumerable<int> Indices(int length)
    {
        long step = Step ?? 1;
        if (step == 0) throw new JinjaError("slice step cannot be zero");
        long Clamp(long? v, long forMissing, long low, long high)
        {
            if (v is null) return forMissing;
            long x = v.Value < 0 ? v.Value + length : v.Value;
            return Math.Clamp(x, low, high);
        }
        if (step > 0)
        {
            long start = Clamp(Start, 0, 0, length), stop = Clamp(Stop, length, 0, length);
            for (long i = start; i < stop; i += step) yield return (int)i;
        }
        else
        {
            long start = Clamp(Start, length - 1, -1, length - 1), stop = Clamp(Stop, -1, -1, length - 1);
            for (long i = start; i > stop; i += step) yield return (int)i;
        }
    }
}
