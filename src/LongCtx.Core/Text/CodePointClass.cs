using System.Buffers;
using System.Globalization;
using System.Text;

namespace LongCtx.Text;

/// <summary>
/// The character classes the GPT-style split patterns use, decided per code point (not per UTF-16 unit,
/// which is where .NET Regex goes wrong on surrogate pairs).
/// </summary>
internal static class CodePointClass
{
    public const byte Letter = 1, Number = 2, Space = 3, Other = 4;

    private static readonly byte[] Ascii = BuildAscii();

    private static byte[] BuildAscii()
    {
        var t = new byte[128];
        for (int c = 0; c < 128; c++) t[c] = Slow(new Rune(c));
        return t;
    }

    /// <summary>Class of the code point at <paramref name="i"/> and its UTF-16 length; lone surrogates count as Other.</summary>
    public static byte At(ReadOnlySpan<char> s, int i, out int len)
    {
        char c = s[i];
        if (c < 128) { len = 1; return Ascii[c]; }
        if (Rune.DecodeFromUtf16(s[i..], out var r, out len) != OperationStatus.Done) { len = 1; return Other; }
        return Slow(r);
    }

    private static byte Slow(Rune r)
    {
        // \s is Unicode White_Space; .NET's Rune.IsWhiteSpace covers the same code points.
        if (Rune.IsWhiteSpace(r)) return Space;
        switch (Rune.GetUnicodeCategory(r))
        {
            case UnicodeCategory.UppercaseLetter:
            case UnicodeCategory.LowercaseLetter:
            case UnicodeCategory.TitlecaseLetter:
            case UnicodeCategory.ModifierLetter:
            case UnicodeCategory.OtherLetter:
                return Letter;
            case UnicodeCategory.DecimalDigitNumber:
            case UnicodeCategory.LetterNumber:
            case UnicodeCategory.OtherNumber:
                return Number;
            default:
                return Other;
        }
    }
}
