using System.Globalization;
using System.Text;

namespace LongCtx.Text;

/// <summary>
/// A stretch of text the model encodes on its own: [Start, Start + Length) of Text. AtStart: it begins at the
/// start of the input (Metaspace's prepend_scheme "first" prepends only there).
/// </summary>
internal readonly record struct Piece(string Text, int Start, int Length, bool AtStart)
{
    public ReadOnlySpan<char> Span => Text.AsSpan(Start, Length);
}

/// <summary>A tokenizer.json pre-tokenizer: splits (and may rewrite) every piece. Empty pieces are dropped.</summary>
internal abstract class PreTokenizer
{
    public abstract void Apply(List<Piece> input, List<Piece> output);
}

/// <summary>How Split treats the matches of its pattern (Hugging Face's SplitDelimiterBehavior).</summary>
internal enum SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

/// <summary>Split, and the pre-tokenizers that are a Split with a fixed pattern (Digits, Punctuation, Whitespace...).</summary>
internal sealed class SplitPreTokenizer(SplitPattern pattern, SplitBehavior behavior, bool invert) : PreTokenizer
{
    [ThreadStatic] private static List<(int Start, int Length)>? t_matches;
    [ThreadStatic] private static List<(int Start, int End, bool Match)>? t_spans;

    public override void Apply(List<Piece> input, List<Piece> output)
    {
        var matches = t_matches ??= new();
        var spans = t_spans ??= new();
        foreach (var p in input)
        {
            matches.Clear();
            pattern.FindMatches(p.Span, matches);
            spans.Clear();
            int pos = 0;
            foreach (var (s, l) in matches)
            {
                if (s > pos) spans.Add((pos, s, invert));
                spans.Add((s, s + l, !invert));
                pos = s + l;
            }
            if (pos < p.Length) spans.Add((pos, p.Length, invert));
            Emit(p, spans, output);
        }
    }

    private void Emit(Piece p, List<(int Start, int End, bool Match)> spans, List<Piece> output)
    {
        switch (behavior)
        {
            case SplitBehavior.Isolated:
                foreach (var (s, e, _) in spans) Add(output, p, s, e);
                break;
            case SplitBehavior.Removed:
                foreach (var (s, e, m) in spans) if (!m) Add(output, p, s, e);
                break;
            case SplitBehavior.Contiguous:
            case SplitBehavior.MergedWithPrevious:
            {
                // Contiguous joins runs of equal kind; MergedWithPrevious joins a match onto the piece before it.
                var merged = new List<(int Start, int End)>();
                bool previous = false;
                foreach (var (s, e, m) in spans)
                {
                    bool join = behavior == SplitBehavior.Contiguous ? m == previous : m && !previous;
                    if (join && merged.Count > 0) merged[^1] = (merged[^1].Start, e);
                    else merged.Add((s, e));
                    previous = m;
                }
                foreach (var (s, e) in merged) Add(output, p, s, e);
                break;
            }
            case SplitBehavior.MergedWithNext:
            {
                var merged = new List<(int Start, int End)>();
                bool previous = false;
                for (int i = spans.Count - 1; i >= 0; i--)
                {
                    var (s, e, m) = spans[i];
                    if (m && !previous && merged.Count > 0) merged[^1] = (s, merged[^1].End);
                    else merged.Add((s, e));
                    previous = m;
                }
                for (int i = merged.Count - 1; i >= 0; i--) Add(output, p, merged[i].Start, merged[i].End);
                break;
            }
        }
    }

    /// <summary>Only the piece that still begins where the input piece began keeps AtStart.</summary>
    private static void Add(List<Piece> output, Piece p, int s, int e)
    {
        if (e > s) output.Add(new Piece(p.Text, p.Start + s, e - s, p.AtStart && s == 0));
    }
}

/// <summary>What a Split looks for: matches as UTF-16 (start, length), non-overlapping, left to right.</summary>
internal abstract class SplitPattern
{
    public abstract void FindMatches(ReadOnlySpan<char> text, List<(int Start, int Length)> matches);
}

internal sealed class RegexPattern(CodePointRegex regex) : SplitPattern
{
    public override void FindMatches(ReadOnlySpan<char> text, List<(int Start, int Length)> matches) => regex.FindMatches(text, matches);
}

internal sealed class StringPattern(string literal) : SplitPattern
{
    public override void FindMatches(ReadOnlySpan<char> text, List<(int Start, int Length)> matches)
    {
        if (literal.Length == 0) return;
        int pos = 0;
        while (pos <= text.Length - literal.Length)
        {
            int k = text[pos..].IndexOf(literal, StringComparison.Ordinal);
            if (k < 0) break;
            matches.Add((pos + k, literal.Length));
            pos += k + literal.Length;
        }
    }
}

/// <summary>Every code point for which the predicate holds is one match (Digits, Punctuation, WhitespaceSplit).</summary>
internal sealed class CharPattern(Func<Rune, bool> predicate) : SplitPattern
{
    public override void FindMatches(ReadOnlySpan<char> text, List<(int Start, int Length)> matches)
    {
        for (int i = 0; i < text.Length;)
        {
            if (Rune.DecodeFromUtf16(text[i..], out var r, out int used) != System.Buffers.OperationStatus.Done) r = Rune.ReplacementChar;
            if (predicate(r)) matches.Add((i, used));
            i += used;
        }
    }

    public static bool IsNumeric(Rune r) => Rune.GetUnicodeCategory(r) is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;

    /// <summary>ASCII punctuation (printable, not a letter or digit) or a Unicode punctuation category.</summary>
    public static bool IsPunctuation(Rune r) =>
        r.IsAscii ? r.Value is > 32 and < 127 && !char.IsAsciiLetterOrDigit((char)r.Value)
        : Rune.GetUnicodeCategory(r) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation
            or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
            or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation;
}

/// <summary>
/// ByteLevel as a pre-tokenizer: an optional space in front of every piece, then the GPT-2 split when use_regex.
/// The mapping of bytes to printable characters happens in the model, which then works on UTF-8 bytes.
/// </summary>
internal sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : PreTokenizer
{
    private readonly SplitPreTokenizer _split = new(GptSplitter.Gpt2(), SplitBehavior.Isolated, invert: false);

    public override void Apply(List<Piece> input, List<Piece> output)
    {
        List<Piece> spaced = input;
        if (addPrefixSpace)
        {
            spaced = new List<Piece>(input.Count);
            foreach (var p in input)
                spaced.Add(p.Span.StartsWith(' ') ? p : new Piece(" " + p.Span.ToString(), 0, p.Length + 1, p.AtStart));
        }
        if (useRegex) _split.Apply(spaced, output);
        else output.AddRange(spaced);
    }
}

/// <summary>Metaspace: spaces become the replacement ("▁"), one is prepended per prepend_scheme, and with split
/// the text is cut before every replacement character.</summary>
internal sealed class MetaspacePreTokenizer(char replacement, string prependScheme, bool split) : PreTokenizer
{
    private readonly SplitPreTokenizer _split = new(new StringPattern(replacement.ToString()), SplitBehavior.MergedWithNext, invert: false);

    public override void Apply(List<Piece> input, List<Piece> output)
    {
        var rewritten = new List<Piece>(input.Count);
        foreach (var p in input)
        {
            string s = p.Span.ToString().Replace(' ', replacement);
            bool prepend = prependScheme == "always" || (prependScheme == "first" && p.AtStart);
            if (prepend && !s.StartsWith(replacement)) s = replacement + s;
            rewritten.Add(new Piece(s, 0, s.Length, p.AtStart));
        }
        if (split) _split.Apply(rewritten, output);
        else output.AddRange(rewritten.Where(p => p.Length > 0));
    }
}

internal sealed class PreTokenizerSequence(PreTokenizer[] steps) : PreTokenizer
{
    public override void Apply(List<Piece> input, List<Piece> output)
    {
        var current = input;
        for (int i = 0; i < steps.Length; i++)
        {
            var next = i == steps.Length - 1 ? output : new List<Piece>(current.Count * 2);
            steps[i].Apply(current, next);
            current = next;
        }
        if (steps.Length == 0) output.AddRange(input);
    }
}
