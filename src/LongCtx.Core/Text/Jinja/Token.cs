namespace LongCtx.Text.Jinja;

internal enum TokenKind
{
    Data,
    VariableBegin,
    VariableEnd,
    BlockBegin,
    BlockEnd,
    Name,
    String,
    Integer,
    Float,
    /// <summary>An operator or delimiter; its text is the token's value.</summary>
    Operator,
    End,
}

/// <summary>One token of a template: text outside tags, a tag delimiter, or a piece of an expression.</summary>
internal readonly record struct Token(TokenKind Kind, string Value, int Line)
{
    public bool IsName(string name) => Kind == TokenKind.Name && Value == name;
    public bool IsOperator(string op) => Kind == TokenKind.Operator && Value == op;

    public override string ToString() => Kind switch
    {
        TokenKind.End => "end of template",
        TokenKind.Data => "template text",
        TokenKind.VariableEnd => "'}}'",
        TokenKind.BlockEnd => "'%}'",
        TokenKind.String => $"string '{Value}'",
        _ => $"'{Value}'",
    };
}
