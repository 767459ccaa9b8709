using System.Text.RegularExpressions;

namespace LongCtx.Text;

/// <summary>Splits normalized text into pieces (UTF-16 start, length) that BPE encodes independently.</summary>
internal abstract class PreTokenizer
{
    public abstract void Split(ReadOnlySpan<char> text, List<(int Start, int Length)> pieces);
}

/// <summary>The whole segment is one piece (ByteLevel with use_regex false and no Split before it).</summary>
internal sealed class WholePreTokenizer : PreTokenizer
{
    public override void Split(ReadOnlySpan<char> text, List<(int Start, int Length)> pieces)
    {
        if (text.Length > 0) pieces.Add((0, text.Length));
    }
}

/// <summary>
/// Fallback for Split patterns we have no hand-written scanner for, with behavior Isolated (matches and the
/// gaps between them are pieces). Caveat: .NET classes \s, \p{L}, \p{N} work on UTF-16 units, so text with
/// surrogate pairs (emoji, rare CJK) may split differently from Hugging Face's Oniguruma.
/// </summary>
internal sealed class RegexPreTokenizer(string pattern) : PreTokenizer
{
    private readonly Regex _regex = new(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);

    public override void Split(ReadOnlySpan<char> text, List<(int Start, int Length)> pieces)
    {
        int pos = 0;
        foreach (var m in _regex.EnumerateMatches(text))
        {
            if (m.Length == 0) continue;
            if (m.Index > pos) pieces.Add((pos, m.Index - pos));
            pieces.Add((m.Index, m.Length));
            pos = m.Index + m.Length;
        }
        if (pos < text.Length) pieces.Add((pos, text.Length - pos));
    }
}
