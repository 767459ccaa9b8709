namespace LongCtx.Text.Jinja;

/// <summary>
/// Builds the syntax tree of a template from its tokens, following Jinja2's grammar. This file holds the
/// statements (tags); Parser.Expressions.cs the expressions. Tags chat templates do not use (include, import,
/// extends, block, call) are refused by name.
/// </summary>
internal sealed partial class Parser
{
    private static readonly HashSet<string> UnsupportedTags = ["include", "import", "from", "extends", "block", "call", "do", "autoescape", "trans", "print"];

    private readonly List<Token> _tokens;
    private readonly string _name;
    private int _i;
    private int _loopDepth;

    private Parser(List<Token> tokens, string name)
    {
        _tokens = tokens;
        _name = name;
    }

    public static IReadOnlyList<Stmt> Parse(string source, string name)
    {
        var parser = new Parser(Lexer.Tokenize(source, name), name);
        return parser.Subparse([]).Body;
    }

    private Token Current => _tokens[_i];

    private Token Peek(int ahead = 1) => _tokens[Math.Min(_i + ahead, _tokens.Count - 1)];

    private Token Next() => _tokens[_i++];

    private TemplateException Error(Token at, string message) => new(_name, at.Line, message);

    private Token Expect(TokenKind kind, string? value = null)
    {
        var t = Current;
        if (t.Kind != kind || value is not null && t.Value != value)
            throw Error(t, $"expected {(value is not null ? $"'{value}'" : kind == TokenKind.Name ? "a name" : kind == TokenKind.BlockEnd ? "'%}'" : kind == TokenKind.VariableEnd ? "'}}'" : kind.ToString())}, got {t}");
        _i++;
        return t;
    }

    private Token ExpectOperator(string op) => Expect(TokenKind.Operator, op);

    private bool SkipOperator(string op)
    {
        if (!Current.IsOperator(op)) return false;
        _i++;
        return true;
    }

    private bool SkipName(string name)
    {
        if (!Current.IsName(name)) return false;
        _i++;
        return true;
    }

    /// <summary>Nodes up to a block tag named in <paramref name="endTags"/>; the stream is left after that tag's name.</summary>
    private (List<Stmt> Body, string? End) Subparse(string[] endTags)
    {
        var body = new List<Stmt>();
        while (true)
        {
            var t = Current;
            switch (t.Kind)
            {
                case TokenKind.Data:
                    body.Add(new DataStmt(t.Value, t.Line));
                    _i++;
                    break;
                case TokenKind.VariableBegin:
                    _i++;
                    var value = ParseTuple(withCondExpr: true);
                    Expect(TokenKind.VariableEnd);
                    body.Add(new OutputStmt(value, t.Line));
                    break;
                case TokenKind.BlockBegin:
                    var tag = Peek();
                    if (tag.Kind == TokenKind.Name && endTags.Contains(tag.Value))
                    {
                        _i += 2;
                        return (body, tag.Value);
                    }
                    _i++;
                    body.Add(Statement());
                    break;
                case TokenKind.End:
                    if (endTags.Length > 0) throw Error(t, $"the template ended where {string.Join(" or ", endTags.Select(e => $"'{{% {e} %}}'"))} was expected");
                    return (body, null);
                default:
                    throw Error(t, $"unexpected {t}");
            }
        }
    }

    private Stmt Statement()
    {
        var tag = Expect(TokenKind.Name);
        switch (tag.Value)
        {
            case "if": return If(tag);
            case "for": return For(tag);
            case "set": return Set(tag);
            case "macro": return Macro(tag);
            case "filter": return FilterBlock(tag);
            case "with": return With(tag);
            case "generation":
                Expect(TokenKind.BlockEnd);
                var body = Subparse(["endgeneration"]).Body;
                Expect(TokenKind.BlockEnd);
                return new BlockStmt(body, tag.Line);
            case "break" or "continue":
                if (_loopDepth == 0) throw Error(tag, $"'{tag.Value}' outside of a loop");
                Expect(TokenKind.BlockEnd);
                return tag.Value == "break" ? new BreakStmt(tag.Line) : new ContinueStmt(tag.Line);
        }
        if (UnsupportedTags.Contains(tag.Value)) throw Error(tag, $"the '{tag.Value}' tag is not supported in chat templates");
        throw Error(tag, $"unknown tag '{tag.Value}'");
    }

    private IfStmt If(Token tag)
    {
        var branches = new List<(Expr, IReadOnlyList<Stmt>)>();
        while (true)
        {
            var test = ParseTuple(withCondExpr: false);
            Expect(TokenKind.BlockEnd);
            var (body, end) = Subparse(["elif", "else", "endif"]);
            branches.Add((test, body));
            if (end == "elif") continue;
            Expect(TokenKind.BlockEnd);
            if (end == "endif") return new IfStmt(branches, null, tag.Line);
            var elseBody = Subparse(["endif"]).Body;
            Expect(TokenKind.BlockEnd);
            return new IfStmt(branches, elseBody, tag.Line);
        }
    }

    private ForStmt For(Token tag)
    {
        var target = AssignTarget(withNamespace: false);
        Expect(TokenKind.Name, "in");
        var iterable = ParseTuple(withCondExpr: false, extraEnd: "recursive");
        Expr? filter = SkipName("if") ? ParseExpression() : null;
        if (Current.IsName("recursive")) throw Error(Current, "recursive loops are not supported");
        Expect(TokenKind.BlockEnd);
        _loopDepth++;
        var (body, end) = Subparse(["endfor", "else"]);
        _loopDepth--;
        Expect(TokenKind.BlockEnd);
        IReadOnlyList<Stmt>? elseBody = null;
        if (end == "else")
        {
            elseBody = Subparse(["endfor"]).Body;
            Expect(TokenKind.BlockEnd);
        }
        return new ForStmt(target, iterable, filter, body, elseBody, tag.Line);
    }

    private Stmt Set(Token tag)
    {
        var target = AssignTarget(withNamespace: true);
        if (SkipOperator("="))
        {
            var value = ParseTuple(withCondExpr: true);
            Expect(TokenKind.BlockEnd);
            return new SetStmt(target, value, tag.Line);
        }
        var filters = FilterChain();
        Expect(TokenKind.BlockEnd);
        var body = Subparse(["endset"]).Body;
        Expect(TokenKind.BlockEnd);
        return new SetBlockStmt(target, body, filters, tag.Line);
    }

    private MacroStmt Macro(Token tag)
    {
        string name = Expect(TokenKind.Name).Value;
        ExpectOperator("(");
        var parameters = new List<(string, Expr?)>();
        while (!Current.IsOperator(")"))
        {
            if (parameters.Count > 0) ExpectOperator(",");
            if (Current.IsOperator(")")) break;
            string p = Expect(TokenKind.Name).Value;
            parameters.Add((p, SkipOperator("=") ? ParseExpression() : null));
        }
        ExpectOperator(")");
        Expect(TokenKind.BlockEnd);
        int loops = _loopDepth;
        _loopDepth = 0;
        var body = Subparse(["endmacro"]).Body;
        _loopDepth = loops;
        Expect(TokenKind.BlockEnd);
        return new MacroStmt(name, parameters, body, tag.Line);
    }

    private FilterBlockStmt FilterBlock(Token tag)
    {
        var filters = FilterChain(startInline: true);
        Expect(TokenKind.BlockEnd);
        var body = Subparse(["endfilter"]).Body;
        Expect(TokenKind.BlockEnd);
        return new FilterBlockStmt(filters, body, tag.Line);
    }

    private WithStmt With(Token tag)
    {
        var assignments = new List<(Target, Expr)>();
        while (Current.Kind != TokenKind.BlockEnd)
        {
            if (assignments.Count > 0) ExpectOperator(",");
            var target = AssignTarget(withNamespace: false);
            ExpectOperator("=");
            assignments.Add((target, ParseExpression()));
        }
        Expect(TokenKind.BlockEnd);
        var body = Subparse(["endwith"]).Body;
        Expect(TokenKind.BlockEnd);
        return new WithStmt(assignments, body, tag.Line);
    }

    /// <summary>A name, names separated by commas (optionally in parentheses), or, for set, <c>namespace.attribute</c>.</summary>
    private Target AssignTarget(bool withNamespace)
    {
        var first = Current;
        if (withNamespace && first.Kind == TokenKind.Name && Peek().IsOperator("."))
        {
            _i += 2;
            return new Target([first.Value], Expect(TokenKind.Name).Value, first.Line);
        }
        bool parens = SkipOperator("(");
        var names = new List<string>();
        do
        {
            if (names.Count > 0 && (Current.IsName("in") || Current.IsOperator("=") || Current.IsOperator(")"))) break;
            var t = Expect(TokenKind.Name);
            if (t.Value is "true" or "false" or "none" or "True" or "False" or "None") throw Error(t, $"cannot assign to '{t.Value}'");
            names.Add(t.Value);
        } while (SkipOperator(","));
        if (parens) ExpectOperator(")");
        return new Target(names, null, first.Line);
    }
}
