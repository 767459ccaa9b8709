using LongCtx.Text;

namespace LongCtx.Tests.Text;

/// <summary>Compares against ids and decodes produced by Hugging Face `tokenizers`.</summary>
public class ReferenceTokenizationTests
{
    [Fact]
    public void Llama3_matches_reference_cases()
    {
        var (cases, _) = TokenizerFixtures.ReadReference(Path.Combine(TokenizerFixtures.FixturesDir, "tokenizers", "llama3", "reference.json"));
        AssertCases(TokenizerFixtures.Llama3, cases);
    }

    [Fact]
    public void Qwen3_matches_reference_cases()
    {
        var tok = TokenizerFixtures.Qwen3;
        var (cases, _) = TokenizerFixtures.ReadReference(Path.Combine(TokenizerFixtures.RepoRoot, "tests", "data", "qwen3-tokenizer-reference.json"));
        AssertCases(tok, cases);
    }

    [Fact]
    public void Llama3_corpus_matches_reference()
    {
        var tok = TokenizerFixtures.Llama3;
        string dir = TokenizerFixtures.FixturesDir;
        var (_, corpusIds) = TokenizerFixtures.ReadReference(Path.Combine(dir, "tokenizers", "llama3", "reference.json"));
        Assert.NotEmpty(corpusIds);
        // fixtures/README.md: the corpus repeated four times as "Part 1.\n<corpus>\nPart 2.\n...".
        string corpus = File.ReadAllText(Path.Combine(dir, "corpus.txt"));
        string text = string.Concat(Enumerable.Range(1, 4).Select(k => $"Part {k}.\n{corpus}\n"));
        Assert.Equal(corpusIds, tok.Encode(text));
        Assert.Equal(text, tok.Decode(corpusIds));
    }

    private static void AssertCases(Tokenizer tok, List<TokenizerFixtures.Case> cases)
    {
        Assert.NotEmpty(cases);
        var failures = new List<string>();
        foreach (var c in cases)
        {
            int[] ids = tok.Encode(c.Text);
            if (!ids.SequenceEqual(c.Ids))
                failures.Add($"encode {Show(c.Text)}: want [{string.Join(",", c.Ids)}] got [{string.Join(",", ids)}]");
            string dec = tok.Decode(c.Ids);
            if (dec != c.Decoded) failures.Add($"decode {Show(c.Text)}: want {Show(c.Decoded)} got {Show(dec)}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    private static string Show(string s) => System.Text.Json.JsonSerializer.Serialize(s, TextJsonContext.Default.String);
}

[System.Text.Json.Serialization.JsonSerializable(typeof(string))]
internal partial class TextJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
