using System.Text;

namespace LongCtx.Text.Jinja;

/// <summary>
/// Runs a template's statements. Scoping follows Jinja2: <c>set</c> binds in the innermost frame; every loop
/// iteration, macro call, <c>with</c> and block body is a new frame over the one it is in, so what a loop sets is
/// gone after the iteration (a namespace carries values out); <c>if</c> makes no frame. This file holds the
/// statements; Renderer.Expressions.cs the expressions.
/// </summary>
internal sealed partial class Renderer(string templateName)
{
    /// <summary>Macro calls nested deeper than this fail instead of overflowing the stack.</summary>
    private const int MaxCallDepth = 256;

    private enum Flow { Normal, Break, Continue }

    private int _callDepth;

    public void Run(IReadOnlyList<Stmt> body, Scope scope, StringBuilder output) => Execute(body, scope, output);

    private Flow Execute(IReadOnlyList<Stmt> body, Scope scope, StringBuilder output)
    {
        foreach (var stmt in body)
        {
            Flow flow;
            try
            {
                flow = ExecuteOne(stmt, scope, output);
            }
            catch (Exception e) when (e is JinjaError or InvalidCastException or OverflowException)
            {
                throw new TemplateException(templateName, stmt.Line, e is InvalidCastException ? "an argument has the wrong type" : e.Message);
            }
            if (flow != Flow.Normal) return flow;
        }
        return Flow.Normal;
    }

    private Flow ExecuteOne(Stmt stmt, Scope scope, StringBuilder output)
    {
        switch (stmt)
        {
            case DataStmt d:
                output.Append(d.Text);
                return Flow.Normal;
            case OutputStmt o:
                output.Append(Filters.SoftStr(Eval(o.Value, scope)));
                return Flow.Normal;
            case IfStmt i:
                foreach (var (test, body) in i.Branches)
                    if (PyOps.Truthy(Eval(test, scope))) return Execute(body, scope, output);
                return i.Else is null ? Flow.Normal : Execute(i.Else, scope, output);
            case ForStmt f:
                For(f, scope, output);
                return Flow.Normal;
            case SetStmt s:
                Assign(s.Target, Eval(s.Value, scope), scope);
                return Flow.Normal;
            case SetBlockStmt sb:
                Assign(sb.Target, ApplyFilters(sb.Filters, RenderBody(sb.Body, new Scope(scope)), scope), scope);
                return Flow.Normal;
            case MacroStmt m:
                scope.Set(m.Name, new Macro(this, m, scope));
                return Flow.Normal;
            case FilterBlockStmt fb:
                output.Append(Filters.SoftStr(ApplyFilters(fb.Filters, RenderBody(fb.Body, new Scope(scope)), scope)));
                return Flow.Normal;
            case WithStmt w:
                var inner = new Scope(scope);
                foreach (var (target, value) in w.Assignments) Assign(target, Eval(value, scope), inner);
                return Execute(w.Body, inner, output);
            case BlockStmt b:
                return Execute(b.Body, scope, output);
            case BreakStmt:
                return Flow.Break;
            case ContinueStmt:
                return Flow.Continue;
        }
        throw new JinjaError($"unknown statement {stmt.GetType().Name}");
    }

    private void For(ForStmt f, Scope scope, StringBuilder output)
    {
        var items = PyOps.Iterate(Eval(f.Iterable, scope));
        if (f.Filter is not null)
            items = items.Where(item =>
            {
                var frame = new Scope(scope);
                Assign(f.Target, item, frame);
                return PyOps.Truthy(Eval(f.Filter, frame));
            }).ToList();
        if (items.Count == 0)
        {
            if (f.Else is not null) Execute(f.Else, scope, output);
            return;
        }
        var loop = new LoopContext(items);
        for (int i = 0; i < items.Count; i++)
        {
            loop.Index0 = i;
            var frame = new Scope(scope);
            frame.Set("loop", loop);
            Assign(f.Target, items[i], frame);
            if (Execute(f.Body, frame, output) == Flow.Break) break;
        }
    }

    private string RenderBody(IReadOnlyList<Stmt> body, Scope scope)
    {
        var sb = new StringBuilder();
        Execute(body, scope, sb);
        return sb.ToString();
    }

    private object? ApplyFilters(IReadOnlyList<FilterExpr> filters, object? value, Scope scope)
    {
        foreach (var f in filters) value = Filters.Apply(f.Name, value, EvalArgs(f.Args, scope));
        return value;
    }

    private static void Assign(Target target, object? value, Scope scope)
    {
        if (target.IsNamespaceAttribute)
        {
            if (!scope.TryGet(target.Names[0], out var ns) || ns is not Namespace n)
                throw new JinjaError($"cannot assign attribute on non-namespace object '{target.Names[0]}'");
            n.Attributes[target.Attribute!] = value;
            return;
        }
        if (target.Names.Count == 1)
        {
            scope.Set(target.Names[0], value);
            return;
        }
        var items = PyOps.Iterate(value);
        if (items.Count != target.Names.Count)
            throw new JinjaError(items.Count > target.Names.Count
                ? $"too many values to unpack (expected {target.Names.Count})"
                : $"not enough values to unpack (expected {target.Names.Count}, got {items.Count})");
        for (int i = 0; i < items.Count; i++) scope.Set(target.Names[i], items[i]);
    }

    /// <summary>A macro: called with arguments, it renders its body in a new frame over the one it was defined in.</summary>
    private sealed class Macro(Renderer renderer, MacroStmt definition, Scope closure) : ICallable
    {
        public string Name => definition.Name;

        public object? Call(CallArgs args)
        {
            var parameters = definition.Parameters;
            if (args.Positional.Count > parameters.Count)
                throw new JinjaError($"macro '{Name}' takes not more than {parameters.Count} argument(s)");
            var frame = new Scope(closure);
            var given = new Dictionary<string, object?>(StringComparer.Ordinal);
            for (int i = 0; i < args.Positional.Count; i++) given[parameters[i].Name] = args.Positional[i];
            foreach (var (name, value) in args.Named)
            {
                if (!parameters.Any(p => p.Name == name)) throw new JinjaError($"macro '{Name}' takes no keyword argument '{name}'");
                if (!given.TryAdd(name, value)) throw new JinjaError($"macro '{Name}' got multiple values for argument '{name}'");
            }
            foreach (var (name, fallback) in parameters)
                frame.Set(name, given.TryGetValue(name, out var v) ? v : fallback is null ? Undefined.Name(name) : renderer.Eval(fallback, frame));
            if (renderer._callDepth >= MaxCallDepth) throw new JinjaError($"macro '{Name}' nested more than {MaxCallDepth} calls deep");
            renderer._callDepth++;
            try
            {
                return renderer.RenderBody(definition.Body, frame);
            }
            finally
            {
                renderer._callDepth--;
            }
        }
    }
}

/// <summary>A frame of variables; lookups fall through to the frames it sits in.</summary>
internal sealed class Scope(Scope? parent)
{
    private readonly Dictionary<string, object?> _vars = new(StringComparer.Ordinal);

    public bool TryGet(string name, out object? value)
    {
        for (var s = this; s is not null; s = s.Parent)
            if (s._vars.TryGetValue(name, out value)) return true;
        value = null;
        return false;
    }

    private Scope? Parent { get; } = parent;

    public void Set(string name, object? value) => _vars[name] = value;
}
