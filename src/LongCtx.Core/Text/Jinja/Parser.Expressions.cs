using System.Globalization;

namespace LongCtx.Text.Jinja;

// Expressions, from the loosest binding to the tightest, as Jinja2 parses them:
// a if b else c; or; and; not; comparisons and in; + -; ~; * / // %; **; unary - +; then a primary with
// its postfixes (.attr, [item], (call)) and filters and tests, which bind tighter than any operator.
internal sealed partial class Parser
{
    private static readonly HashSet<string> CompareOperators = ["==", "!=", "<", "<=", ">", ">="];

    private Expr ParseExpression(bool withCondExpr = true) => withCondExpr ? CondExpression() : Or();

    /// <summary>Expressions separated by commas: one expression, or a tuple of them.</summary>
    private Expr ParseTuple(bool withCondExpr, string? extraEnd = null, bool explicitParens = false)
    {
        var items = new List<Expr>();
        int line = Current.Line;
        bool isTuple = false;
        while (true)
        {
            if (items.Count > 0) ExpectOperator(",");
            var t = Current;
            if (t.Kind is TokenKind.VariableEnd or TokenKind.BlockEnd || t.IsOperator(")") || extraEnd is not null && t.IsName(extraEnd)) break;
            items.Add(ParseExpression(withCondExpr));
            if (Current.IsOperator(",")) isTuple = true;
            else break;
        }
        if (!isTuple)
        {
            if (items.Count == 1) return items[0];
            if (!explicitParens) throw Error(Current, $"expected an expression, got {Current}");
        }
        return new TupleExpr(items, line);
    }

    private Expr CondExpression()
    {
        var expr = Or();
        while (Current.IsName("if"))
        {
            int line = Next().Line;
            var test = Or();
            Expr? otherwise = SkipName("else") ? CondExpression() : null;
            expr = new CondExpr(test, expr, otherwise, line);
        }
        return expr;
    }

    private Expr Or()
    {
        var left = And();
        while (Current.IsName("or"))
        {
            int line = Next().Line;
            left = new LogicExpr(false, left, And(), line);
        }
        return left;
    }

    private Expr And()
    {
        var left = Not();
        while (Current.IsName("and"))
        {
            int line = Next().Line;
            left = new LogicExpr(true, left, Not(), line);
        }
        return left;
    }

    private Expr Not()
    {
        if (!Current.IsName("not")) return Compare();
        int line = Next().Line;
        return new UnaryExpr("not", Not(), line);
    }

    private Expr Compare()
    {
        int line = Current.Line;
        var first = Math1();
        var ops = new List<(string, Expr)>();
        while (true)
        {
            var t = Current;
            if (t.Kind == TokenKind.Operator && CompareOperators.Contains(t.Value)) { _i++; ops.Add((t.Value, Math1())); }
            else if (t.IsName("in")) { _i++; ops.Add(("in", Math1())); }
            else if (t.IsName("not") && Peek().IsName("in")) { _i += 2; ops.Add(("notin", Math1())); }
            else break;
        }
        return ops.Count == 0 ? first : new CompareExpr(first, ops, line);
    }

    private Expr Math1()
    {
        var left = Concat();
        while (Current.IsOperator("+") || Current.IsOperator("-"))
        {
            var op = Next();
            left = new BinaryExpr(op.Value, left, Concat(), op.Line);
        }
        return left;
    }

    private Expr Concat()
    {
        int line = Current.Line;
        var items = new List<Expr> { Math2() };
        while (SkipOperator("~")) items.Add(Math2());
        return items.Count == 1 ? items[0] : new ConcatExpr(items, line);
    }

    private Expr Math2()
    {
        var left = Pow();
        while (Current.Kind == TokenKind.Operator && Current.Value is "*" or "/" or "//" or "%")
        {
            var op = Next();
            left = new BinaryExpr(op.Value, left, Pow(), op.Line);
        }
        return left;
    }

    private Expr Pow()
    {
        var left = Unary();
        while (Current.IsOperator("**"))
        {
            var op = Next();
            left = new BinaryExpr("**", left, Unary(), op.Line);
        }
        return left;
    }

    private Expr Unary(bool withFilter = true)
    {
        var t = Current;
        Expr node;
        if (t.IsOperator("-") || t.IsOperator("+"))
        {
            _i++;
            node = new UnaryExpr(t.Value, Unary(withFilter: false), t.Line);
        }
        else node = Primary();
        node = Postfix(node);
        return withFilter ? FilterExpression(node) : node;
    }

    private Expr Primary()
    {
        var t = Next();
        switch (t.Kind)
        {
            case TokenKind.Name:
                return t.Value switch
                {
                    "true" or "True" => new ConstExpr(true, t.Line),
                    "false" or "False" => new ConstExpr(false, t.Line),
                    "none" or "None" => new ConstExpr(null, t.Line),
                    _ => new NameExpr(t.Value, t.Line),
                };
            case TokenKind.String:
                string s = t.Value;
                while (Current.Kind == TokenKind.String) s += Next().Value;
                return new ConstExpr(s, t.Line);
            case TokenKind.Integer:
                return new ConstExpr(long.TryParse(t.Value, NumberStyles.None, CultureInfo.InvariantCulture, out long n)
                    ? n : throw Error(t, $"integer {t.Value} is too large"), t.Line);
            case TokenKind.Float:
                return new ConstExpr(double.Parse(t.Value, CultureInfo.InvariantCulture), t.Line);
        }
        if (t.IsOperator("("))
        {
            var inner = ParseTuple(withCondExpr: true, explicitParens: true);
            ExpectOperator(")");
            return inner;
        }
        if (t.IsOperator("[")) return List(t);
        if (t.IsOperator("{")) return Dict(t);
        throw Error(t, $"unexpected {t}");
    }

    private ListExpr List(Token open)
    {
        var items = new List<Expr>();
        while (!Current.IsOperator("]"))
        {
            if (items.Count > 0) ExpectOperator(",");
            if (Current.IsOperator("]")) break;
            items.Add(ParseExpression());
        }
        ExpectOperator("]");
        return new ListExpr(items, open.Line);
    }

    private DictExpr Dict(Token open)
    {
        var items = new List<(Expr, Expr)>();
        while (!Current.IsOperator("}"))
        {
            if (items.Count > 0) ExpectOperator(",");
            if (Current.IsOperator("}")) break;
            var key = ParseExpression();
            ExpectOperator(":");
            items.Add((key, ParseExpression()));
        }
        ExpectOperator("}");
        return new DictExpr(items, open.Line);
    }

    private Expr Postfix(Expr node)
    {
        while (true)
        {
            var t = Current;
            if (t.IsOperator(".")) node = Attribute(node);
            else if (t.IsOperator("[")) node = Subscript(node);
            else if (t.IsOperator("(")) node = Call(node);
            else return node;
        }
    }

    private Expr FilterExpression(Expr node)
    {
        while (true)
        {
            var t = Current;
            if (t.IsOperator("|")) node = FilterChain(node);
            else if (t.IsName("is")) node = Test(node);
            else if (t.IsOperator("(")) node = Call(node);
            else return node;
        }
    }

    private Expr Attribute(Expr target)
    {
        var dot = Next();
        var t = Next();
        if (t.Kind == TokenKind.Name) return new AttrExpr(target, t.Value, dot.Line);
        if (t.Kind == TokenKind.Integer) return new ItemExpr(target, new ConstExpr(long.Parse(t.Value, CultureInfo.InvariantCulture), t.Line), dot.Line);
        throw Error(t, $"expected a name or a number after '.', got {t}");
    }

    private ItemExpr Subscript(Expr target)
    {
        var open = Next();
        var keys = new List<Expr>();
        while (!Current.IsOperator("]"))
        {
            if (keys.Count > 0) ExpectOperator(",");
            keys.Add(Subscribed());
        }
        ExpectOperator("]");
        if (keys.Count == 0) throw Error(open, "expected an index or a slice inside '[]'");
        return new ItemExpr(target, keys.Count == 1 ? keys[0] : new TupleExpr(keys, open.Line), open.Line);
    }

    /// <summary>An index, or a slice <c>start:stop:step</c> with any part left out.</summary>
    private Expr Subscribed()
    {
        int line = Current.Line;
        Expr? start = null;
        if (!Current.IsOperator(":"))
        {
            start = ParseExpression();
            if (!Current.IsOperator(":")) return start;
        }
        _i++;
        Expr? stop = SliceEnd() ? null : ParseExpression();
        Expr? step = null;
        if (SkipOperator(":")) step = SliceEnd() ? null : ParseExpression();
        return new SliceExpr(start, stop, step, line);
    }

    private bool SliceEnd() => Current.IsOperator("]") || Current.IsOperator(",") || Current.IsOperator(":");

    private CallExpr Call(Expr target)
    {
        var open = Next();
        return new CallExpr(target, CallArguments(), open.Line);
    }

    /// <summary>The arguments of a call, after its '(' and through its ')'.</summary>
    private Arguments CallArguments()
    {
        var positional = new List<Expr>();
        var named = new List<(string, Expr)>();
        while (!Current.IsOperator(")"))
        {
            if (positional.Count + named.Count > 0)
            {
                ExpectOperator(",");
                if (Current.IsOperator(")")) break;
            }
            if (Current.IsOperator("*") || Current.IsOperator("**")) throw Error(Current, "*args and **kwargs in calls are not supported");
            if (Current.Kind == TokenKind.Name && Peek().IsOperator("="))
            {
                string key = Next().Value;
                _i++;
                named.Add((key, ParseExpression()));
            }
            else
            {
                if (named.Count > 0) throw Error(Current, "a positional argument follows a keyword argument");
                positional.Add(ParseExpression());
            }
        }
        ExpectOperator(")");
        return new Arguments(positional, named);
    }

    /// <summary><c>| f | g(x)</c>: each filter applied to the result of the one before.</summary>
    private FilterExpr FilterChain(Expr value)
    {
        Expr node = value;
        while (SkipOperator("|")) node = OneFilter(node);
        return (FilterExpr)node;
    }

    /// <summary>The filters of a filter block or a set block, applied later to the rendered body.</summary>
    private List<FilterExpr> FilterChain(bool startInline = false)
    {
        var filters = new List<FilterExpr>();
        while (startInline || SkipOperator("|"))
        {
            startInline = false;
            filters.Add(OneFilter(null));
        }
        return filters;
    }

    private FilterExpr OneFilter(Expr? value)
    {
        var t = Expect(TokenKind.Name);
        string name = t.Value;
        if (!Filters.Exists(name)) throw Error(t, $"no filter named '{name}'");
        var args = SkipOperator("(") ? CallArguments() : Arguments.None;
        return new FilterExpr(value, name, args, t.Line);
    }

    private Expr Test(Expr value)
    {
        var isToken = Next();
        bool negated = SkipName("not");
        var t = Expect(TokenKind.Name);
        if (!Predicates.Exists(t.Value)) throw Error(t, $"no test named '{t.Value}'");
        Arguments args;
        if (SkipOperator("(")) args = CallArguments();
        else if (Current.Kind is TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float
                 || Current.IsOperator("(") || Current.IsOperator("[") || Current.IsOperator("{"))
        {
            if (Current.IsName("else") || Current.IsName("or") || Current.IsName("and")) args = Arguments.None;
            else if (Current.IsName("is")) throw Error(Current, "tests cannot be chained with 'is'");
            else args = new Arguments([Postfix(Primary())], []);
        }
        else args = Arguments.None;
        Expr test = new TestExpr(value, t.Value, args, isToken.Line);
        return negated ? new UnaryExpr("not", test, isToken.Line) : test;
    }
}
