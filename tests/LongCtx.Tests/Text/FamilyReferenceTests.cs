namespace LongCtx.Tests.Text;

/// <summary>
/// Against the references Hugging Face `tokenizers` and `transformers` made (bench/reference/make_tokenizer_refs.py,
/// tests/data/tokenizers/FAMILY.json; the first two files, for llama3 and qwen3, predate it and hold fewer fields):
/// encode without special tokens, decode with and without them, the prompt's ids with them as transformers adds
/// them, the four-part corpus, and 100,000 characters without whitespace.
/// </summary>
public class FamilyReferenceTests
{
    public static TheoryData<string, string> References()
    {
        var data = new TheoryData<string, string>
        {
            { "llama3", Path.Combine(TokenizerFixtures.FixturesDir, "tokenizers", "llama3", "reference.json") },
            { "qwen3", Path.Combine(TokenizerFixtures.RepoRoot, "tests", "data", "qwen3-tokenizer-reference.json") },
        };
        string dir = Path.Combine(TokenizerFixtures.RepoRoot, "tests", "data", "tokenizers");
        foreach (string file in Directory.EnumerateFiles(dir, "*.json").Order(StringComparer.Ordinal))
            data.Add(Path.GetFileNameWithoutExtension(file), file);
        return data;
    }

    [Theory]
    [MemberData(nameof(References))]
    public void Matches_the_reference(string family, string path)
    {
        var tok = TokenizerFixtures.Family(family);
        var (cases, corpusIds, noWhitespace) = TokenizerFixtures.ReadFullReference(path);
        Assert.NotEmpty(cases);
        var failures = new List<string>();
        foreach (var c in cases)
        {
            Check(failures, "encode", c.Text, c.Ids, tok.Encode(c.Text));
            Check(failures, "decode", c.Text, c.Decoded, tok.Decode(c.Ids));
            if (c.DecodedSkip is { } skip) Check(failures, "decode skipping special tokens", c.Text, skip, tok.Decode(c.Ids, skipSpecialTokens: true));
            if (c.TransformersIds is { } special) Check(failures, "encode with special tokens (transformers)", c.Text, special, tok.Encode(c.Text, addSpecialTokens: true));
        }
        Assert.True(failures.Count == 0, $"{family}: {failures.Count} differences\n{string.Join("\n", failures)}");

        if (corpusIds.Length > 0)
        {
            string corpus = TokenizerFixtures.CorpusText();
            Assert.Equal(corpusIds, tok.Encode(corpus));
            Assert.Equal(corpus, tok.Decode(corpusIds));
        }
        if (noWhitespace is { } n)
        {
            int[] ids = tok.Encode(TokenizerFixtures.NoWhitespaceText(n.Length));
            Assert.Equal(n.Count, ids.Length);
            Assert.Equal(n.First, ids[..n.First.Length]);
            Assert.Equal(n.Last, ids[^n.Last.Length..]);
        }
    }

    private static void Check<T>(List<string> failures, string what, string text, T want, T got)
    {
        bool same = want is int[] w && got is int[] g ? w.SequenceEqual(g) : Equals(want, got);
        if (!same) failures.Add($"{what} {Show(text)}: want {Show(want)} got {Show(got)}");
    }

    internal static string Show<T>(T value) => value switch
    {
        int[] ids => $"[{string.Join(",", ids)}]",
        string s => System.Text.Json.JsonSerializer.Serialize(s, TextJsonContext.Default.String),
        _ => $"{value}",
    };
}

[System.Text.Json.Serialization.JsonSerializable(typeof(string))]
internal partial class TextJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
