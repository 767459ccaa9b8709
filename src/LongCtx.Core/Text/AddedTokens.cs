using System.Buffers;
using System.Globalization;
using System.Text;

namespace LongCtx.Text;

/// <summary>An added token of tokenizer.json with its matching flags.</summary>
internal sealed record AddedToken(int Id, string Content, bool Special, bool LStrip, bool RStrip, bool SingleWord, bool Normalized);

/// <summary>
/// Finds added tokens in text as Hugging Face does: leftmost-longest matches (a trie walked from each candidate
/// position), scanning on after each match; single_word discards a match that touches a word character;
/// lstrip/rstrip take the whitespace beside the token into it. Tokens with normalized true are matched on the
/// normalized text with their normalized content, the others on the raw text: one instance for each.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly List<Dictionary<char, int>> _children = [new()];
    private readonly List<AddedToken?> _terminal = [null];
    private readonly SearchValues<char> _firstChars;

    public AddedTokenMatcher(IEnumerable<(string Pattern, AddedToken Token)> tokens)
    {
        foreach (var (pattern, token) in tokens)
        {
            if (pattern.Length == 0) continue;
            int node = 0;
            foreach (char c in pattern)
            {
                if (!_children[node].TryGetValue(c, out int child))
                {
                    child = _children.Count;
                    _children.Add(new());
                    _terminal.Add(null);
                    _children[node][c] = child;
                }
                node = child;
            }
            _terminal[node] ??= token; // the first token with a given text wins, like a later duplicate being ignored
        }
        _firstChars = SearchValues.Create(_children[0].Keys.ToArray());
        IsEmpty = _children[0].Count == 0;
    }

    public bool IsEmpty { get; }

    /// <summary>Cuts text into parts in order: plain text as (start, length, null), added tokens with their token.</summary>
    public void Split(ReadOnlySpan<char> text, List<(int Start, int Length, AddedToken? Token)> parts)
    {
        int segStart = 0, i = 0;
        while (!IsEmpty && i < text.Length)
        {
            int k = text[i..].IndexOfAny(_firstChars);
            if (k < 0) break;
            i += k;
            var (hit, end) = Longest(text, i);
            if (hit == null) { i++; continue; }
            if (hit.SingleWord && ((i > 0 && IsWordChar(text, i, before: true)) || (end < text.Length && IsWordChar(text, end, before: false))))
            {
                i = end;
                continue;
            }
            int tokStart = i, tokEnd = end;
            if (hit.LStrip) while (tokStart > segStart && char.IsWhiteSpace(text[tokStart - 1])) tokStart--;
            if (hit.RStrip) while (tokEnd < text.Length && char.IsWhiteSpace(text[tokEnd])) tokEnd++;
            if (tokStart > segStart) parts.Add((segStart, tokStart - segStart, null));
            parts.Add((tokStart, tokEnd - tokStart, hit));
            // The scan goes on from the match's own end, as Hugging Face's does: a token inside the whitespace that
            // rstrip took is still found (and emitted) there.
            segStart = tokEnd;
            i = end;
        }
        if (segStart < text.Length) parts.Add((segStart, text.Length - segStart, null));
    }

    private (AddedToken? Token, int End) Longest(ReadOnlySpan<char> text, int start)
    {
        AddedToken? best = null;
        int bestEnd = start, node = 0;
        for (int j = start; j < text.Length && _children[node].TryGetValue(text[j], out node); j++)
            if (_terminal[node] is { } t) { best = t; bestEnd = j + 1; }
        return (best, bestEnd);
    }

    /// <summary>Whether the code point just before (or at) index is a regex \w character: letter, mark, digit, connector, joiner.</summary>
    private static bool IsWordChar(ReadOnlySpan<char> text, int index, bool before)
    {
        Rune r;
        var status = before ? Rune.DecodeLastFromUtf16(text[..index], out r, out _) : Rune.DecodeFromUtf16(text[index..], out r, out _);
        if (status != OperationStatus.Done) return false;
        if (r.Value is 0x200C or 0x200D) return true;
        return Rune.GetUnicodeCategory(r) is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
            or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter or UnicodeCategory.LetterNumber or UnicodeCategory.NonSpacingMark
            or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark or UnicodeCategory.DecimalDigitNumber
            or UnicodeCategory.ConnectorPunctuation;
    }
}
