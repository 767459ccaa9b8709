using System.Security.Cryptography;
using LongCtx.Cli;
using LongCtx.Tests.Cli;
using LongCtx.Tests.Model;

namespace LongCtx.Tests.Retrieval;

/// <summary>
/// The C# retrieval prompts against bench/retrieval/prompts.py's output (tests/data/retrieval, made by its make.sh
/// with python3): the same lines for a small set, the same file digest for larger ones, through the command.
/// </summary>
public class RetrievalTaskTests
{
    private static readonly string Data = Path.Combine(ModelFixtures.RepoRoot, "tests", "data", "retrieval");

    [Fact]
    public void PromptsEqualPromptsPyLineByLine()
    {
        var expected = File.ReadAllLines(Path.Combine(Data, "prompts-512-2048.jsonl"));
        var lines = RetrievalTask.Prompts([512, 2048], 3, RetrievalTask.DefaultSeed).Select(p => p.ToJsonLine()).ToArray();
        Assert.Equal(6, expected.Length);
        Assert.Equal(expected, lines);
    }

    public static TheoryData<string, string, string, string> Digests()
    {
        var data = new TheoryData<string, string, string, string>();
        foreach (var line in File.ReadAllLines(Path.Combine(Data, "prompts-sha256.txt")))
        {
            var f = line.Split(' ');
            data.Add(f[0], f[1], f[2], f[3]);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Digests))]
    public void CommandWritesPromptsPyBytes(string sha256, string seed, string contexts, string perContext)
    {
        using var dir = ModelFixtures.NewTempDir();
        var r = CliRunner.Run("make-retrieval-prompts", "--out", dir.File("p.jsonl"), "--contexts", contexts, "--per-context", perContext, "--seed", seed);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(sha256, Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(dir.File("p.jsonl")))));
        int count = contexts.Split(',').Length * int.Parse(perContext);
        Assert.Equal($"wrote {count} prompts to {dir.File("p.jsonl")}", r.Stdout.Trim());
    }

    [Fact]
    public void ADocumentHoldsItsRecordsWhereItSays()
    {
        var rng = new PythonRandom(3);
        var (ids, records) = RetrievalTask.Document(rng, 4094);
        Assert.Equal(4094, ids.Length);
        Assert.Equal(4094 / RetrievalTask.TokensPerRecord, records.Length);
        Assert.Equal(records.Length, records.Select(r => r.Key).Distinct().Count());
        foreach (var (key, value, start) in records) Assert.Equal([RetrievalTask.K, key, value], ids[start..(start + 3)]);
        Assert.Equal(records.Length, ids.Count(i => i == RetrievalTask.K));
        Assert.All(ids.Where((_, i) => !records.Any(r => i >= r.Start && i < r.Start + 3)).Skip(1), i => Assert.InRange(i, 16, 511));
    }

    [Theory]
    [InlineData(1, 80, 0.013)] // 1/80 lies just above 0.0125: scaled by 1000 in doubles it would tie and round to 0.012
    [InlineData(3, 80, 0.037)]
    [InlineData(1, 16, 0.062)] // an exact tie: to even
    [InlineData(3, 16, 0.188)]
    [InlineData(0, 4094, 0.0)]
    [InlineData(65531, 65534, 1.0)]
    public void DepthRoundsAsPythonDoes(int start, int length, double expected) => Assert.Equal(expected, RetrievalTask.Depth(start, length));

    [Fact]
    public void RefusesAContextTooShortForItsRecords()
    {
        using var dir = ModelFixtures.NewTempDir();
        var r = CliRunner.Run("make-retrieval-prompts", "--out", dir.File("p.jsonl"), "--contexts", "40");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("error: a document of 38 tokens cannot hold 16 records: give a longer context", r.Stderr.Trim());
    }
}
