using System.Text;
using LongCtx.Text;

namespace LongCtx.Tests.Text;

/// <summary>
/// The hand-written scanners must split exactly like the regexes. On BMP-only text .NET Regex has the same
/// leftmost-first semantics as Oniguruma, so it serves as the oracle for random strings.
/// </summary>
public class SplitterTests
{
    // Letters (ASCII, accented, CJK), digits (incl. non-ASCII), spaces of several kinds, newlines, punctuation, marks.
    private const string Alphabet = "aAbZsStTrReEvVmMlLdD'''   \t\r\n\n\u00a0\u3000015٣½.,-_()!?\"éü日本ёΩ\u0301#@";

    [Theory]
    [InlineData(GptSplitter.Llama3Pattern)]
    [InlineData(GptSplitter.QwenPattern)]
    [InlineData(GptSplitter.Gpt2Pattern)]
    public void Scanner_matches_regex_on_random_bmp_text(string pattern)
    {
        var scanner = GptSplitter.ForPattern(pattern)!;
        var regex = new CodePointRegex(pattern);
        var rng = new Random(pattern.Length);
        for (int round = 0; round < 3000; round++)
        {
            var sb = new StringBuilder();
            int len = rng.Next(0, 24);
            for (int i = 0; i < len; i++) sb.Append(Alphabet[rng.Next(Alphabet.Length)]);
            string text = sb.ToString();
            var want = new List<(int, int)>();
            var got = new List<(int, int)>();
            regex.FindMatches(text, want);
            scanner.FindMatches(text, got);
            Assert.True(want.SequenceEqual(got), $"text {Escape(text)}: regex [{Show(text, want)}] scanner [{Show(text, got)}]");
        }
    }

    [Fact]
    public void Scanner_treats_surrogate_pairs_as_one_code_point()
    {
        var scanner = GptSplitter.ForPattern(GptSplitter.Llama3Pattern)!;
        var pieces = new List<(int Start, int Length)>();
        string text = " 𠜎𠜱x 🚢🌊!"; // CJK extension B letters, then emoji (symbols)
        scanner.FindMatches(text, pieces);
        Assert.Equal(new[] { " 𠜎𠜱x", " 🚢🌊!" }, pieces.Select(p => text.Substring(p.Start, p.Length)));
        // The general regex path maps supplementary characters to a stand-in of their category and agrees.
        var viaRegex = new List<(int Start, int Length)>();
        new CodePointRegex(GptSplitter.Llama3Pattern).FindMatches(text, viaRegex);
        Assert.Equal(pieces, viaRegex);
    }

    private static string Show(string text, List<(int Start, int Length)> pieces) =>
        string.Join("|", pieces.Select(p => Escape(text.Substring(p.Start, p.Length))));

    private static string Escape(string s) => s.Replace("\r", "\\r").Replace("\n", "\\n").Replace("\t", "\\t");
}
