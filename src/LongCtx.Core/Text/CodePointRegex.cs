using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace LongCtx.Text;

/// <summary>
/// A tokenizer.json regex run the way Hugging Face's Oniguruma runs it: over code points. .NET Regex classes
/// (\p{L}, \p{S}, \s) look at UTF-16 units, so a supplementary character (emoji, CJK extension B) would be two
/// surrogates of category Cs. Text holding such characters is matched on a copy where each of them is replaced by
/// one BMP character of its own general category (outside every range the tokenizer patterns name), and the
/// match positions are mapped back.
/// </summary>
internal sealed class CodePointRegex
{
    private readonly Regex _regex;

    public CodePointRegex(string pattern)
    {
        Pattern = pattern;
        _regex = new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);
    }

    public string Pattern { get; }

    /// <summary>Appends the non-empty matches, left to right, as UTF-16 (start, length) in <paramref name="text"/>.</summary>
    public void FindMatches(ReadOnlySpan<char> text, List<(int Start, int Length)> matches)
    {
        if (text.IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            foreach (var m in _regex.EnumerateMatches(text))
                if (m.Length > 0) matches.Add((m.Index, m.Length));
            return;
        }
        char[] mapped = ArrayPool<char>.Shared.Rent(text.Length);
        int[] origin = ArrayPool<int>.Shared.Rent(text.Length + 1);
        try
        {
            int n = 0;
            for (int i = 0; i < text.Length; n++)
            {
                origin[n] = i;
                if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                {
                    mapped[n] = StandIn(Rune.GetUnicodeCategory(new Rune(text[i], text[i + 1])));
                    i += 2;
                }
                else mapped[n] = text[i++];
            }
            origin[n] = text.Length;
            foreach (var m in _regex.EnumerateMatches(mapped.AsSpan(0, n)))
                if (m.Length > 0) matches.Add((origin[m.Index], origin[m.Index + m.Length] - origin[m.Index]));
        }
        finally
        {
            ArrayPool<char>.Shared.Return(mapped);
            ArrayPool<int>.Shared.Return(origin);
        }
    }

    /// <summary>A BMP character of the category: non-ASCII, not CJK or kana, no case folding onto ASCII.</summary>
    private static char StandIn(UnicodeCategory c) => c switch
    {
        UnicodeCategory.UppercaseLetter => '\u0102',
        UnicodeCategory.LowercaseLetter => '\u0103',
        UnicodeCategory.TitlecaseLetter => '\u01C5',
        UnicodeCategory.ModifierLetter => '\u02B0',
        UnicodeCategory.OtherLetter => '\uA000',
        UnicodeCategory.NonSpacingMark => '\u0300',
        UnicodeCategory.SpacingCombiningMark => '\u0903',
        UnicodeCategory.EnclosingMark => '\u20DD',
        UnicodeCategory.DecimalDigitNumber => '\u0660',
        UnicodeCategory.LetterNumber => '\u2160',
        UnicodeCategory.OtherNumber => '\u00B2',
        UnicodeCategory.ConnectorPunctuation => '\u203F',
        UnicodeCategory.DashPunctuation => '\u2010',
        UnicodeCategory.OpenPunctuation => '\u2045',
        UnicodeCategory.ClosePunctuation => '\u2046',
        UnicodeCategory.InitialQuotePunctuation => '\u2039',
        UnicodeCategory.FinalQuotePunctuation => '\u203A',
        UnicodeCategory.OtherPunctuation => '\u00B6',
        UnicodeCategory.MathSymbol => '\u00AC',
        UnicodeCategory.CurrencySymbol => '\u00A2',
        UnicodeCategory.ModifierSymbol => '\u02C2',
        UnicodeCategory.OtherSymbol => '\u00A6',
        UnicodeCategory.Format => '\u00AD',
        UnicodeCategory.PrivateUse => '\uE000',
        _ => '\u0378', // unassigned
    };
}
