using System.Globalization;
using System.Text;

namespace LongCtx.Text.Jinja;

/// <summary>
/// Splits a template into tokens as Jinja2's lexer does with the settings Hugging Face renders chat templates
/// with (trim_blocks and lstrip_blocks on): text, tag delimiters and the tokens of the expressions inside tags.
/// Whitespace control: <c>{%-</c> strips the whitespace before a tag, <c>-%}</c> the whitespace after it;
/// trim_blocks drops the first newline after a block or comment tag; lstrip_blocks drops the spaces and tabs
/// between the start of a line and a block or comment tag; a <c>+</c> turns either off for its tag.
/// Comments vanish; <c>{% raw %}</c> bodies come out as text.
/// </summary>
internal sealed class Lexer
{
    private static readonly string[] Operators =
        ["//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"];

    private readonly string _src;
    private readonly string _name;
    private readonly List<Token> _tokens = [];
    private int _pos;
    private int _line = 1;
    private bool _lineStarting = true;

    private Lexer(string source, string name)
    {
        // As Jinja2: every kind of line break becomes "\n", and one newline at the very end is dropped.
        _src = string.Join("\n", PyText.SplitLines(source, keepEnds: false));
        _name = name;
    }

    public static List<Token> Tokenize(string source, string name)
    {
        var lexer = new Lexer(source, name);
        lexer.Run();
        lexer._tokens.Add(new Token(TokenKind.End, "", lexer._line));
        return lexer._tokens;
    }

    private void Run()
    {
        while (_pos < _src.Length)
        {
            int start = NextTagStart(_pos);
            if (start < 0)
            {
                EmitData(_src[_pos..], _pos, _src.Length);
                break;
            }
            char kind = _src[start + 1];
            char mod = start + 2 < _src.Length ? _src[start + 2] : '\0';
            string text = _src[_pos..start];
            if (mod == '-') text = PyText.RStrip(text);
            else if (mod != '+' && kind != '{') text = LStripBlock(text);
            EmitData(text, _pos, start);
            int afterOpen = start + 2 + (mod is '-' or '+' ? 1 : 0);
            if (kind == '#') Comment(afterOpen);
            else if (kind == '%' && RawBodyStart(afterOpen) is int body) Raw(body);
            else Tag(afterOpen, variable: kind == '{');
        }
    }

    private int NextTagStart(int from)
    {
        for (int i = _src.IndexOf('{', from); i >= 0 && i + 1 < _src.Length; i = _src.IndexOf('{', i + 1))
            if (_src[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    /// <summary>lstrip_blocks: whitespace between the line's start and a block or comment tag goes.</summary>
    private string LStripBlock(string text)
    {
        int lineStart = text.LastIndexOf('\n') + 1;
        if (lineStart == 0 && !_lineStarting) return text;
        for (int i = lineStart; i < text.Length; i++)
            if (!PyText.IsSpace(text[i])) return text;
        return text[..lineStart];
    }

    private void EmitData(string text, int sourceStart, int sourceEnd)
    {
        int line = _line;
        Advance(sourceStart, sourceEnd);
        if (text.Length > 0) _tokens.Add(new Token(TokenKind.Data, text, line));
    }

    private void Advance(int from, int to)
    {
        for (int i = from; i < to; i++) if (_src[i] == '\n') _line++;
        _pos = to;
    }

    private void Comment(int from)
    {
        int end = _src.IndexOf("#}", from, StringComparison.Ordinal);
        if (end < 0) throw Error("a comment is not closed with '#}'");
        int after = end + 2;
        if (end > from && _src[end - 1] == '-') after = SkipSpace(after);
        else if (!(end > from && _src[end - 1] == '+') && after < _src.Length && _src[after] == '\n') after++;
        Advance(_pos, after);
        _lineStarting = _src[after - 1] == '\n';
    }

    /// <summary>Where the body of a <c>{% raw %}</c> starts, if the tag at <paramref name="from"/> is one.</summary>
    private int? RawBodyStart(int from)
    {
        int i = SkipSpace(from);
        if (string.CompareOrdinal(_src, i, "raw", 0, 3) != 0) return null;
        i = SkipSpace(i + 3);
        if (string.CompareOrdinal(_src, i, "-%}", 0, 3) == 0) return SkipSpace(i + 3);
        return string.CompareOrdinal(_src, i, "%}", 0, 2) == 0 ? i + 2 : null;
    }

    private void Raw(int body)
    {
        for (int i = _src.IndexOf("{%", body, StringComparison.Ordinal); i >= 0; i = _src.IndexOf("{%", i + 2, StringComparison.Ordinal))
        {
            char mod = i + 2 < _src.Length ? _src[i + 2] : '\0';
            int j = SkipSpace(i + 2 + (mod is '-' or '+' ? 1 : 0));
            if (string.CompareOrdinal(_src, j, "endraw", 0, 6) != 0) continue;
            j = SkipSpace(j + 6);
            int after;
            if (string.CompareOrdinal(_src, j, "-%}", 0, 3) == 0) after = SkipSpace(j + 3);
            else if (string.CompareOrdinal(_src, j, "+%}", 0, 3) == 0) after = j + 3;
            else if (string.CompareOrdinal(_src, j, "%}", 0, 2) == 0) after = j + 2 < _src.Length && _src[j + 2] == '\n' ? j + 3 : j + 2;
            else continue;
            string text = _src[body..i];
            if (mod == '-') text = PyText.RStrip(text);
            else if (mod != '+') text = LStripBlock(text);
            int line = _line;
            Advance(_pos, after);
            if (text.Length > 0) _tokens.Add(new Token(TokenKind.Data, text, line));
            _lineStarting = _src[after - 1] == '\n';
            return;
        }
        throw Error("'{% raw %}' is not closed with '{% endraw %}'");
    }

    private int SkipSpace(int i)
    {
        while (i < _src.Length && PyText.IsSpace(_src[i])) i++;
        return i;
    }

    private void Tag(int from, bool variable)
    {
        _tokens.Add(new Token(variable ? TokenKind.VariableBegin : TokenKind.BlockBegin, variable ? "{{" : "{%", _line));
        Advance(_pos, from);
        int depth = 0;
        while (true)
        {
            if (depth == 0 && TagEnd(variable) is int after)
            {
                _tokens.Add(new Token(variable ? TokenKind.VariableEnd : TokenKind.BlockEnd, variable ? "}}" : "%}", _line));
                Advance(_pos, after);
                _lineStarting = _src[after - 1] == '\n';
                return;
            }
            int i = _pos;
            if (i >= _src.Length) throw Error($"a tag is not closed with '{(variable ? "}}" : "%}")}'");
            char c = _src[i];
            if (PyText.IsSpace(c)) { Advance(i, SkipSpace(i)); continue; }
            if (char.IsAsciiDigit(c)) Number(i);
            else if (char.IsLetter(c) || c == '_') Name(i);
            else if (c is '\'' or '"') StringLiteral(i);
            else
            {
                string op = Operators.FirstOrDefault(o => string.CompareOrdinal(_src, i, o, 0, o.Length) == 0)
                    ?? throw Error($"unexpected character '{c}'");
                if (op is "(" or "[" or "{") depth++;
                else if (op is ")" or "]" or "}")
                {
                    if (depth == 0) throw Error($"unexpected '{op}'");
                    depth--;
                }
                _tokens.Add(new Token(TokenKind.Operator, op, _line));
                Advance(i, i + op.Length);
            }
        }
    }

    /// <summary>The position after the closing delimiter at the current position (with its whitespace control), if there is one.</summary>
    private int? TagEnd(bool variable)
    {
        int i = _pos;
        if (variable)
        {
            if (string.CompareOrdinal(_src, i, "-}}", 0, 3) == 0) return SkipSpace(i + 3);
            return string.CompareOrdinal(_src, i, "}}", 0, 2) == 0 ? i + 2 : null;
        }
        if (string.CompareOrdinal(_src, i, "-%}", 0, 3) == 0) return SkipSpace(i + 3);
        if (string.CompareOrdinal(_src, i, "+%}", 0, 3) == 0) return i + 3;
        if (string.CompareOrdinal(_src, i, "%}", 0, 2) == 0) return i + 2 < _src.Length && _src[i + 2] == '\n' ? i + 3 : i + 2;
        return null;
    }

    private void Number(int start)
    {
        int i = Digits(start);
        bool isFloat = false;
        // "x.0.1" is two lookups, not a float: a number right after '.' takes no fraction.
        bool afterDot = _tokens.Count > 0 && _tokens[^1].IsOperator(".");
        if (!afterDot && i + 1 < _src.Length && _src[i] == '.' && char.IsAsciiDigit(_src[i + 1]))
        {
            i = Digits(i + 1);
            isFloat = true;
        }
        if (i < _src.Length && _src[i] is 'e' or 'E')
        {
            int j = i + 1;
            if (j < _src.Length && _src[j] is '+' or '-') j++;
            if (j < _src.Length && char.IsAsciiDigit(_src[j]))
            {
                i = Digits(j);
                isFloat = true;
            }
        }
        _tokens.Add(new Token(isFloat ? TokenKind.Float : TokenKind.Integer, _src[start..i].Replace("_", ""), _line));
        Advance(start, i);
    }

    private int Digits(int i)
    {
        while (i < _src.Length && (char.IsAsciiDigit(_src[i]) || _src[i] == '_' && i + 1 < _src.Length && char.IsAsciiDigit(_src[i + 1]))) i++;
        return i;
    }

    private void Name(int start)
    {
        int i = start + 1;
        while (i < _src.Length && (char.IsLetterOrDigit(_src[i]) || _src[i] == '_')) i++;
        _tokens.Add(new Token(TokenKind.Name, _src[start..i], _line));
        Advance(start, i);
    }

    private void StringLiteral(int start)
    {
        char quote = _src[start];
        int i = start + 1;
        while (i < _src.Length && _src[i] != quote) i += _src[i] == '\\' ? 2 : 1;
        if (i >= _src.Length) throw Error("a string is not closed");
        _tokens.Add(new Token(TokenKind.String, Unescape(_src[(start + 1)..i]), _line));
        Advance(start, i + 1);
    }

    /// <summary>Python's backslash escapes, as Jinja2 decodes string literals.</summary>
    private string Unescape(string s)
    {
        if (!s.Contains('\\')) return s;
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] != '\\' || i + 1 >= s.Length) { sb.Append(s[i]); continue; }
            char e = s[++i];
            switch (e)
            {
                case '\n': break;
                case '\\' or '\'' or '"': sb.Append(e); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'n': sb.Append('\n'); break;
                case 'r': sb.Append('\r'); break;
                case 't': sb.Append('\t'); break;
                case 'v': sb.Append('\v'); break;
                case 'x': sb.Append(HexEscape(s, ref i, 2)); break;
                case 'u': sb.Append(HexEscape(s, ref i, 4)); break;
                case 'U': sb.Append(HexEscape(s, ref i, 8)); break;
                case >= '0' and <= '7':
                    int value = e - '0', n = 1;
                    while (n < 3 && i + 1 < s.Length && s[i + 1] is >= '0' and <= '7') { value = value * 8 + (s[++i] - '0'); n++; }
                    sb.Append((char)value);
                    break;
                default: sb.Append('\\').Append(e); break;
            }
        }
        return sb.ToString();
    }

    private string HexEscape(string s, ref int i, int digits)
    {
        if (i + digits >= s.Length || !int.TryParse(s.AsSpan(i + 1, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int code)
            || !Rune.IsValid(code))
            throw Error($"a string has a truncated or invalid \\{s[i]} escape");
        i += digits;
        return char.ConvertFromUtf32(code);
    }

    private TemplateException Error(string message) => new(_name, _line, message);
}
