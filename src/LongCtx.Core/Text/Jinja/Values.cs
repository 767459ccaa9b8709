using System.Runtime.CompilerServices;

namespace LongCtx.Text.Jinja;

// The values a template works with, as Python objects: null (None), bool, long (int), double (float), string,
// List<object?> (list), object?[] (tuple), PyDict (dict), and the kinds below.

/// <summary>A failure while rendering (a type error, an undefined value used, a blocked operation); the renderer adds the line.</summary>
internal sealed class JinjaError(string message) : Exception(message);

/// <summary>
/// Jinja2's default Undefined: what a missing variable, attribute or item evaluates to. It prints as nothing, is
/// false, iterates as empty and has length 0; any other use (an attribute of it, arithmetic, a call) fails with
/// the message of the lookup that produced it.
/// </summary>
internal sealed class Undefined(string message)
{
    public string Message { get; } = message;

    public static Undefined Name(string name) => new($"'{name}' is undefined");

    public static Undefined Attribute(object? owner, string name) =>
        new(owner is null ? $"'None' has no attribute '{name}'" : $"'{PyOps.TypeName(owner)} object' has no attribute '{name}'");

    public static Undefined Element(object? owner, object? key) => new($"{PyOps.TypeName(owner)} object has no element {PyOps.Repr(key)}");

    public JinjaError Fail() => new(Message);
}

/// <summary>dict: insertion-ordered, keys compared as Python compares them (1 == 1.0 == True).</summary>
internal sealed class PyDict() : OrderedDictionary<object, object?>(KeyComparer.Instance)
{
    private sealed class KeyComparer : IEqualityComparer<object>
    {
        public static readonly KeyComparer Instance = new();

        public new bool Equals(object? x, object? y) => PyOps.Equal(x, y);

        public int GetHashCode(object o) => o switch
        {
            string s => s.GetHashCode(StringComparison.Ordinal),
            bool b => (b ? 1.0 : 0.0).GetHashCode(),
            long l => ((double)l).GetHashCode(),
            double d => d.GetHashCode(),
            object?[] t => t.Aggregate(17, (h, x) => h * 31 + (x is null ? 0 : GetHashCode(x))),
            _ => RuntimeHelpers.GetHashCode(o),
        };
    }
}

/// <summary>namespace(...): the one object a template may change, so that a value set inside a loop survives it.</summary>
internal sealed class Namespace
{
    public Dictionary<string, object?> Attributes { get; } = new(StringComparer.Ordinal);
}

internal interface ICallable
{
    string Name { get; }
    object? Call(CallArgs args);
}

/// <summary>A function the environment provides (range, namespace, raise_exception, a bound string method...).</summary>
internal sealed class Builtin(string name, Func<CallArgs, object?> body) : ICallable
{
    public string Name { get; } = name;
    public object? Call(CallArgs args) => body(args);
}

/// <summary>The arguments of a call, bound to a Python-style signature on demand.</summary>
internal sealed class CallArgs(IReadOnlyList<object?> positional, IReadOnlyList<KeyValuePair<string, object?>> named)
{
    /// <summary>An argument the call did not pass.</summary>
    public static readonly object Missing = new();

    public static readonly CallArgs Empty = new([], []);

    public IReadOnlyList<object?> Positional { get; } = positional;
    public IReadOnlyList<KeyValuePair<string, object?>> Named { get; } = named;

    /// <summary>The values for <paramref name="parameters"/> in order, <see cref="Missing"/> where not passed.</summary>
    public object?[] Bind(string function, params string[] parameters)
    {
        if (Positional.Count > parameters.Length)
            throw new JinjaError($"{function}() takes at most {parameters.Length} argument(s) ({Positional.Count} given)");
        var values = new object?[parameters.Length];
        Array.Fill(values, Missing);
        for (int i = 0; i < Positional.Count; i++) values[i] = Positional[i];
        foreach (var (name, value) in Named)
        {
            int at = Array.IndexOf(parameters, name);
            if (at < 0) throw new JinjaError($"{function}() got an unexpected keyword argument '{name}'");
            if (values[at] != Missing) throw new JinjaError($"{function}() got multiple values for argument '{name}'");
            values[at] = value;
        }
        return values;
    }

    public static T Or<T>(object? value, T otherwise) => value == Missing ? otherwise : (T)value!;
}

/// <summary>The <c>loop</c> variable of a for loop.</summary>
internal sealed class LoopContext(IReadOnlyList<object?> items)
{
    private object? _lastChanged = CallArgs.Missing;

    public int Index0 { get; set; }

    public object? Get(string name) => name switch
    {
        "index" => (long)Index0 + 1,
        "index0" => (long)Index0,
        "revindex" => (long)(items.Count - Index0),
        "revindex0" => (long)(items.Count - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == items.Count - 1,
        "length" => (long)items.Count,
        "depth" => 1L,
        "depth0" => 0L,
        "previtem" => Index0 > 0 ? items[Index0 - 1] : Undefined.Name("there is no previous item"),
        "nextitem" => Index0 + 1 < items.Count ? items[Index0 + 1] : Undefined.Name("there is no next item"),
        "cycle" => new Builtin("loop.cycle", a =>
            a.Positional.Count == 0 ? throw new JinjaError("no items for cycling given") : a.Positional[Index0 % a.Positional.Count]),
        "changed" => new Builtin("loop.changed", a =>
        {
            object?[] now = [.. a.Positional];
            if (_lastChanged is object?[] last && PyOps.Equal(last, now)) return false;
            _lastChanged = now;
            return true;
        }),
        _ => Undefined.Attribute(this, name),
    };
}
