using System.Globalization;
using System.Text;

namespace LongCtx.Text;

/// <summary>A tokenizer.json normalizer: rewrites the text between added tokens before pre-tokenization.</summary>
internal abstract class Normalizer
{
    public abstract string Apply(string s);
}

internal sealed class UnicodeForm(bool compose, bool compat) : Normalizer
{
    public override string Apply(string s) => UnicodeNormalizer.Normalize(s, compose, compat);
}

internal sealed class Lowercase : Normalizer
{
    public override string Apply(string s) => s.ToLowerInvariant();
}

/// <summary>Prepend: adds its text in front of a non-empty string (Llama 2's "▁").</summary>
internal sealed class Prepend(string prefix) : Normalizer
{
    public override string Apply(string s) => s.Length == 0 ? s : prefix + s;
}

internal sealed class ReplaceText(string from, string to) : Normalizer
{
    public override string Apply(string s) => from.Length == 0 ? s : s.Replace(from, to, StringComparison.Ordinal);
}

internal sealed class ReplaceRegex(CodePointRegex regex, string to) : Normalizer
{
    public override string Apply(string s)
    {
        var matches = new List<(int Start, int Length)>();
        regex.FindMatches(s, matches);
        if (matches.Count == 0) return s;
        var sb = new StringBuilder(s.Length);
        int pos = 0;
        foreach (var (start, length) in matches)
        {
            sb.Append(s, pos, start - pos).Append(to);
            pos = start + length;
        }
        return sb.Append(s, pos, s.Length - pos).ToString();
    }
}

/// <summary>Strip: removes whitespace at the left and/or right end.</summary>
internal sealed class StripSpaces(bool left, bool right) : Normalizer
{
    public override string Apply(string s) => left && right ? s.Trim() : left ? s.TrimStart() : right ? s.TrimEnd() : s;
}

/// <summary>StripAccents: drops combining marks, all three Mark categories (meant to follow NFD or NFKD).</summary>
internal sealed class StripAccents : Normalizer
{
    public override string Apply(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var r in s.EnumerateRunes())
            if (Rune.GetUnicodeCategory(r) is not (UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark))
                sb.Append(r.ToString());
        return sb.ToString();
    }
}

internal sealed class NormalizerSequence(Normalizer[] steps) : Normalizer
{
    public override string Apply(string s)
    {
        foreach (var n in steps) s = n.Apply(s);
        return s;
    }
}
