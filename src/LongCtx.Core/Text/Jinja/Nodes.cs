namespace LongCtx.Text.Jinja;

// The syntax tree the parser builds and the renderer walks. Every node keeps its line for error messages.

internal abstract record Expr(int Line);

internal sealed record ConstExpr(object? Value, int Line) : Expr(Line);

internal sealed record NameExpr(string Name, int Line) : Expr(Line);

internal sealed record ListExpr(IReadOnlyList<Expr> Items, int Line) : Expr(Line);

internal sealed record TupleExpr(IReadOnlyList<Expr> Items, int Line) : Expr(Line);

internal sealed record DictExpr(IReadOnlyList<(Expr Key, Expr Value)> Items, int Line) : Expr(Line);

/// <summary><c>x.name</c>: an attribute first, then an item.</summary>
internal sealed record AttrExpr(Expr Target, string Name, int Line) : Expr(Line);

/// <summary><c>x[key]</c>: an item first, then an attribute.</summary>
internal sealed record ItemExpr(Expr Target, Expr Key, int Line) : Expr(Line);

/// <summary><c>start:stop:step</c> inside brackets.</summary>
internal sealed record SliceExpr(Expr? Start, Expr? Stop, Expr? Step, int Line) : Expr(Line);

internal sealed record Arguments(IReadOnlyList<Expr> Positional, IReadOnlyList<(string Name, Expr Value)> Named)
{
    public static readonly Arguments None = new([], []);
}

internal sealed record CallExpr(Expr Target, Arguments Args, int Line) : Expr(Line);

/// <summary><c>value | name(args)</c>; the value is null in a <c>{% filter %}</c> block, which filters its body.</summary>
internal sealed record FilterExpr(Expr? Value, string Name, Arguments Args, int Line) : Expr(Line);

/// <summary><c>value is name(args)</c>.</summary>
internal sealed record TestExpr(Expr Value, string Name, Arguments Args, int Line) : Expr(Line);

/// <summary><c>not x</c>, <c>-x</c>, <c>+x</c>.</summary>
internal sealed record UnaryExpr(string Op, Expr Operand, int Line) : Expr(Line);

/// <summary>Arithmetic: + - * / // % **.</summary>
internal sealed record BinaryExpr(string Op, Expr Left, Expr Right, int Line) : Expr(Line);

/// <summary><c>a ~ b ~ c</c>: the operands as strings, joined.</summary>
internal sealed record ConcatExpr(IReadOnlyList<Expr> Items, int Line) : Expr(Line);

/// <summary><c>and</c> / <c>or</c>, short-circuit, returning an operand as Python does.</summary>
internal sealed record LogicExpr(bool And, Expr Left, Expr Right, int Line) : Expr(Line);

/// <summary>A chain of comparisons (== != &lt; &lt;= &gt; &gt;= in, notin): <c>a &lt; b &lt; c</c> is (a &lt; b) and (b &lt; c).</summary>
internal sealed record CompareExpr(Expr First, IReadOnlyList<(string Op, Expr Right)> Ops, int Line) : Expr(Line);

/// <summary><c>a if test else b</c>; without else, undefined when the test fails.</summary>
internal sealed record CondExpr(Expr Test, Expr Then, Expr? Else, int Line) : Expr(Line);

/// <summary>What a for or set assigns to: a name, names to unpack a sequence into, or a namespace's attribute.</summary>
internal sealed record Target(IReadOnlyList<string> Names, string? Attribute, int Line)
{
    public bool IsNamespaceAttribute => Attribute is not null;
}

internal abstract record Stmt(int Line);

internal sealed record DataStmt(string Text, int Line) : Stmt(Line);

internal sealed record OutputStmt(Expr Value, int Line) : Stmt(Line);

internal sealed record IfStmt(IReadOnlyList<(Expr Test, IReadOnlyList<Stmt> Body)> Branches, IReadOnlyList<Stmt>? Else, int Line) : Stmt(Line);

internal sealed record ForStmt(Target Target, Expr Iterable, Expr? Filter, IReadOnlyList<Stmt> Body, IReadOnlyList<Stmt>? Else, int Line) : Stmt(Line);

internal sealed record SetStmt(Target Target, Expr Value, int Line) : Stmt(Line);

/// <summary><c>{% set x %}...{% endset %}</c>: the rendered body, optionally filtered.</summary>
internal sealed record SetBlockStmt(Target Target, IReadOnlyList<Stmt> Body, IReadOnlyList<FilterExpr> Filters, int Line) : Stmt(Line);

internal sealed record MacroStmt(string Name, IReadOnlyList<(string Name, Expr? Default)> Parameters, IReadOnlyList<Stmt> Body, int Line) : Stmt(Line);

internal sealed record FilterBlockStmt(IReadOnlyList<FilterExpr> Filters, IReadOnlyList<Stmt> Body, int Line) : Stmt(Line);

internal sealed record WithStmt(IReadOnlyList<(Target Target, Expr Value)> Assignments, IReadOnlyList<Stmt> Body, int Line) : Stmt(Line);

/// <summary>A body rendered in place: transformers' <c>{% generation %}</c> block (it only marks assistant tokens for training).</summary>
internal sealed record BlockStmt(IReadOnlyList<Stmt> Body, int Line) : Stmt(Line);

internal sealed record BreakStmt(int Line) : Stmt(Line);

internal sealed record ContinueStmt(int Line) : Stmt(Line);
