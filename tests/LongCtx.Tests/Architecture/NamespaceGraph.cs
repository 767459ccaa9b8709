using System.Reflection;
using System.Reflection.Emit;

namespace LongCtx.Tests.Architecture;

/// <summary>
/// Which namespaces of an assembly use which, read by reflection: every type's base type, interfaces, fields, properties,
/// method signatures and the types, methods and fields its method bodies name (their IL tokens), nested and generated types
/// counting for the namespace they sit in.
/// </summary>
internal static class NamespaceGraph
{
    private static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value);

    private const BindingFlags Everything = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;

    /// <summary>For each namespace of the assembly, the other namespaces of the same assembly its types use.</summary>
    public static Dictionary<string, HashSet<string>> Of(Assembly assembly)
    {
        var edges = new Dictionary<string, HashSet<string>>();
        foreach (var type in assembly.GetTypes())
        {
            if (type.Namespace is not { } from) continue;
            var uses = edges.TryGetValue(from, out var set) ? set : edges[from] = [];
            foreach (var used in UsedTypes(type))
                foreach (var t in Flatten(used))
                    if (t.Assembly == assembly && t.Namespace is { } to && to != from) uses.Add(to);
        }
        return edges;
    }

    /// <summary>A cycle of namespaces (the first namespace repeated at the end), or null.</summary>
    public static List<string>? FindCycle(Dictionary<string, HashSet<string>> edges)
    {
        var state = new Dictionary<string, int>(); // 1: on the path, 2: done
        var path = new List<string>();
        List<string>? Visit(string node)
        {
            state[node] = 1;
            path.Add(node);
            foreach (var next in edges.GetValueOrDefault(node, []).Order(StringComparer.Ordinal))
            {
                if (state.GetValueOrDefault(next) == 1) return [.. path.Skip(path.IndexOf(next)), next];
                if (state.GetValueOrDefault(next) == 0 && Visit(next) is { } cycle) return cycle;
            }
            path.RemoveAt(path.Count - 1);
            state[node] = 2;
            return null;
        }
        foreach (var node in edges.Keys.Order(StringComparer.Ordinal))
            if (state.GetValueOrDefault(node) == 0 && Visit(node) is { } cycle) return cycle;
        return null;
    }

    private static IEnumerable<Type> UsedTypes(Type type)
    {
        if (type.BaseType is { } b) yield return b;
        foreach (var i in type.GetInterfaces()) yield return i;
        foreach (var f in type.GetFields(Everything)) yield return f.FieldType;
        foreach (var p in type.GetProperties(Everything)) yield return p.PropertyType;
        foreach (var e in type.GetEvents(Everything)) if (e.EventHandlerType is { } h) yield return h;
        foreach (var m in type.GetMethods(Everything).Cast<MethodBase>().Concat(type.GetConstructors(Everything)))
        {
            if (m is MethodInfo mi) yield return mi.ReturnType;
            foreach (var p in m.GetParameters()) yield return p.ParameterType;
            foreach (var t in BodyReferences(m)) yield return t;
        }
    }

    /// <summary>The types a method body names: the declaring types of the methods and fields it uses, and the types it mentions.</summary>
    private static IEnumerable<Type> BodyReferences(MethodBase method)
    {
        byte[]? il;
        try { il = method.GetMethodBody()?.GetILAsByteArray(); }
        catch (Exception e) when (e is InvalidOperationException or BadImageFormatException) { yield break; }
        if (il is null) yield break;
        var typeArgs = method.DeclaringType is { IsGenericType: true } d ? d.GetGenericArguments() : null;
        var methodArgs = method.IsGenericMethod ? method.GetGenericArguments() : null;
        for (int at = 0; at < il.Length;)
        {
            short value = il[at] == 0xFE ? (short)(0xFE00 | il[at + 1]) : il[at];
            at += il[at] == 0xFE ? 2 : 1;
            var op = OpCodesByValue[value];
            if (op.OperandType is OperandType.InlineField or OperandType.InlineMethod or OperandType.InlineTok or OperandType.InlineType)
            {
                int token = BitConverter.ToInt32(il, at);
                MemberInfo? member = null;
                try { member = method.Module.ResolveMember(token, typeArgs, methodArgs); }
                catch (ArgumentException) { }
                switch (member)
                {
                    case Type t: yield return t; break;
                    case MethodBase m:
                        if (m.DeclaringType is { } owner) yield return owner;
                        if (m is MethodInfo { IsGenericMethod: true } g) foreach (var a in g.GetGenericArguments()) yield return a;
                        break;
                    case FieldInfo f:
                        if (f.DeclaringType is { } holder) yield return holder;
                        yield return f.FieldType;
                        break;
                }
            }
            at += op.OperandType switch
            {
                OperandType.InlineNone => 0,
                OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                OperandType.InlineVar => 2,
                OperandType.InlineI8 or OperandType.InlineR => 8,
                OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, at),
                _ => 4,
            };
        }
    }

    /// <summary>A type and what it is built of: element types, generic arguments.</summary>
    private static IEnumerable<Type> Flatten(Type t)
    {
        if (t.HasElementType && t.GetElementType() is { } e)
        {
            foreach (var x in Flatten(e)) yield return x;
            yield break;
        }
        if (t.IsGenericParameter) yield break;
        yield return t.IsGenericType ? t.GetGenericTypeDefinition() : t;
        if (t.IsGenericType)
            foreach (var a in t.GetGenericArguments())
                foreach (var x in Flatten(a)) yield return x;
    }
}
