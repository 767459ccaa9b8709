namespace LongCtx.Text;

/// <summary>
/// Hand-written scanners for the two split-pattern families in use, equivalent to the regexes under
/// leftmost-first alternation (Oniguruma / Rust semantics) but over code points and without allocation.
/// GPT-4 family (Llama 3 with maxDigits 3, Qwen with 1):
///   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
/// GPT-2 (ByteLevel use_regex true):
///   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
/// </summary>
internal sealed class GptSplitter : SplitPattern
{
    public const string Llama3Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    public const string QwenPattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private readonly bool _gpt2;
    private readonly int _maxDigits;

    private GptSplitter(bool gpt2, int maxDigits) { _gpt2 = gpt2; _maxDigits = maxDigits; }

    public static GptSplitter Gpt2() => new(true, int.MaxValue);

    /// <summary>The scanner for a known pattern string, or null when the pattern is not one we implement.</summary>
    public static GptSplitter? ForPattern(string pattern) => pattern switch
    {
        Llama3Pattern => new GptSplitter(false, 3),
        QwenPattern => new GptSplitter(false, 1),
        Gpt2Pattern => Gpt2(),
        _ => null,
    };

    /// <summary>The pattern's alternatives cover every character, so the matches are the whole segmentation.</summary>
    public override void FindMatches(ReadOnlySpan<char> t, List<(int Start, int Length)> pieces)
    {
        int i = 0;
        while (i < t.Length)
        {
            int end = _gpt2 ? NextGpt2(t, i) : NextGpt4(t, i);
            pieces.Add((i, end - i));
            i = end;
        }
    }

    private int NextGpt4(ReadOnlySpan<char> t, int i)
    {
        if (t[i] == '\'' && Contraction(t, i + 1, ignoreCase: true) is var n && n > 0) return i + 1 + n;
        byte c0 = CodePointClass.At(t, i, out int l0);
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if (c0 == CodePointClass.Letter) return Run(t, i, CodePointClass.Letter, int.MaxValue);
        if (c0 != CodePointClass.Number && t[i] != '\r' && t[i] != '\n' && i + l0 < t.Length
            && CodePointClass.At(t, i + l0, out _) == CodePointClass.Letter)
            return Run(t, i + l0, CodePointClass.Letter, int.MaxValue);
        // \p{N}{1,max}
        if (c0 == CodePointClass.Number) return Run(t, i, CodePointClass.Number, _maxDigits);
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        int start = -1;
        if (c0 == CodePointClass.Other) start = i;
        else if (t[i] == ' ' && i + 1 < t.Length && CodePointClass.At(t, i + 1, out _) == CodePointClass.Other) start = i + 1;
        if (start >= 0)
        {
            int j = Run(t, start, CodePointClass.Other, int.MaxValue);
            while (j < t.Length && (t[j] == '\r' || t[j] == '\n')) j++;
            return j;
        }
        // c0 is whitespace: \s*[\r\n]+ | \s+(?!\S) | \s+  (all White_Space code points are single UTF-16 units)
        int e = Run(t, i, CodePointClass.Space, int.MaxValue);
        for (int k = e - 1; k >= i; k--)
            if (t[k] == '\r' || t[k] == '\n') return k + 1;
        return WhitespaceEnd(t, i, e);
    }

    private static int NextGpt2(ReadOnlySpan<char> t, int i)
    {
        if (t[i] == '\'' && Contraction(t, i + 1, ignoreCase: false) is var n && n > 0) return i + 1 + n;
        byte c0 = CodePointClass.At(t, i, out _);
        int start = i;
        if (t[i] == ' ' && i + 1 < t.Length)
        {
            byte c1 = CodePointClass.At(t, i + 1, out _);
            if (c1 != CodePointClass.Space) { c0 = c1; start = i + 1; }
        }
        if (c0 != CodePointClass.Space) return Run(t, start, c0, int.MaxValue);
        return WhitespaceEnd(t, i, Run(t, i, CodePointClass.Space, int.MaxValue));
    }

    /// <summary>\s+(?!\S)|\s+ over the whitespace run [i, e): a run followed by a non-space gives its last char back.</summary>
    private static int WhitespaceEnd(ReadOnlySpan<char> t, int i, int e) => e < t.Length && e - i >= 2 ? e - 1 : e;

    /// <summary>End of a run of code points of class <paramref name="cls"/> starting at i, at most max of them.</summary>
    private static int Run(ReadOnlySpan<char> t, int i, byte cls, int max)
    {
        int count = 0;
        while (i < t.Length && count < max)
        {
            if (CodePointClass.At(t, i, out int len) != cls) break;
            i += len;
            count++;
        }
        return i;
    }

    /// <summary>Length of the contraction suffix (s, t, re, ve, m, ll, d) at i after an apostrophe, or 0.</summary>
    private static int Contraction(ReadOnlySpan<char> t, int i, bool ignoreCase)
    {
        if (i >= t.Length) return 0;
        char a = Fold(t[i], ignoreCase);
        if (a is 's' or 't' or 'm' or 'd') return 1;
        if (i + 1 >= t.Length) return 0;
        char b = Fold(t[i + 1], ignoreCase);
        return (a, b) is ('r', 'e') or ('v', 'e') or ('l', 'l') ? 2 : 0;
    }

    // Unicode simple case folding as the regex engines apply it under (?i); U+017F (long s) folds to 's'.
    private static char Fold(char c, bool ignoreCase) =>
        !ignoreCase ? c : c is >= 'A' and <= 'Z' ? (char)(c + 32) : c == '\u017F' ? 's' : c;
}
