using System.Buffers;

namespace LongCtx.Text;

internal sealed record AddedToken(int Id, string Content, bool Special, bool LStrip, bool RStrip);

/// <summary>
/// Finds added tokens in raw text (longest match at the earliest position) so they bypass normalization
/// and BPE. lstrip/rstrip absorb the whitespace beside the token; single_word is not honoured.
/// </summary>
internal sealed class AddedTokens
{
    private readonly Dictionary<char, AddedToken[]> _byFirstChar = new();
    private readonly SearchValues<char> _firstChars;

    public AddedTokens(IEnumerable<AddedToken> tokens)
    {
        foreach (var g in tokens.Where(t => t.Content.Length > 0).GroupBy(t => t.Content[0]))
            _byFirstChar[g.Key] = g.OrderByDescending(t => t.Content.Length).ToArray();
        _firstChars = SearchValues.Create(_byFirstChar.Keys.ToArray());
    }

    /// <summary>Cuts text into parts in order: plain segments as (start, length, null), added tokens with their token.</summary>
    public void Split(ReadOnlySpan<char> text, List<(int Start, int Length, AddedToken? Token)> parts)
    {
        int segStart = 0, i = 0;
        while (i < text.Length)
        {
            int k = text[i..].IndexOfAny(_firstChars);
            if (k < 0) break;
            i += k;
            AddedToken? hit = null;
            foreach (var t in _byFirstChar[text[i]])
                if (text[i..].StartsWith(t.Content, StringComparison.Ordinal)) { hit = t; break; }
            if (hit == null) { i++; continue; }
            int tokStart = i, tokEnd = i + hit.Content.Length;
            if (hit.LStrip) while (tokStart > segStart && char.IsWhiteSpace(text[tokStart - 1])) tokStart--;
            if (hit.RStrip) while (tokEnd < text.Length && char.IsWhiteSpace(text[tokEnd])) tokEnd++;
            if (tokStart > segStart) parts.Add((segStart, tokStart - segStart, null));
            parts.Add((tokStart, tokEnd - tokStart, hit));
            segStart = i = tokEnd;
        }
        if (segStart < text.Length) parts.Add((segStart, text.Length - segStart, null));
    }
}
