using System.Text.Json;
using LongCtx.Backends.Cpu;
using LongCtx.ContextParallel;
using LongCtx.Engine;
using LongCtx.Model;
using LongCtx.Sampling;
using LongCtx.Tests.Model;

namespace LongCtx.Tests.Cli;

/// <summary>
/// `longctx eval-retrieval` on a fresh random model: prompts whose answer is dense's own greedy continuation
/// (one of them deliberately wrong) must score exactly as built for dense and for pass-kv on every rank
/// count, and every strategy must be counted over every prompt.
/// </summary>
public class EvalRetrievalTests
{
    private const int QueryTokens = 4, AnswerTokens = 3;

    [Fact]
    public void CountsDenseAndPassKvExactly()
    {
        using var dir = ModelFixtures.NewTempDir();
        var (contexts, expected) = WriteModelAndPrompts(dir);
        var r = CliRunner.Run("eval-retrieval", "--model", dir.Path, "--prompts", dir.File("prompts.jsonl"),
            "--strategies", "dense,pass-kv,star,apb", "--ranks", "2,3", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var rows = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("results").EnumerateArray().ToList();
        Assert.Equal(contexts.Length * (1 + 3 * 2), rows.Count);
        foreach (var row in rows)
        {
            int context = row.GetProperty("context").GetInt32(), total = row.GetProperty("total").GetInt32();
            int correct = row.GetProperty("correct").GetInt32(), same = row.GetProperty("same_as_dense").GetInt32();
            string strategy = row.GetProperty("strategy").GetString()!;
            Assert.Equal(expected[context].Total, total);
            if (strategy is "dense" or "pass-kv")
            {
                Assert.Equal(expected[context].Correct, correct);
                Assert.Equal(total, same);
                Assert.Equal(Math.Round(100.0 * correct / total, 2), row.GetProperty("accuracy").GetDouble());
            }
            else Assert.InRange(correct, 0, total);
            Assert.Contains(row.GetProperty("ranks").GetInt32(), strategy == "dense" ? [1] : new[] { 2, 3 });
        }
    }

    [Fact]
    public void PrintsATable()
    {
        using var dir = ModelFixtures.NewTempDir();
        WriteModelAndPrompts(dir);
        var r = CliRunner.Run("eval-retrieval", "--model", dir.Path, "--prompts", dir.File("prompts.jsonl"), "--strategies", "dense,apb", "--ranks", "2");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("same as dense", r.Stdout);
        Assert.Contains("apb", r.Stdout);
    }

    [Fact]
    public void RefusesAQueryLongerThanThePrompt()
    {
        using var dir = ModelFixtures.NewTempDir();
        WriteModelAndPrompts(dir);
        File.WriteAllText(dir.File("bad.jsonl"), """{"ids": [1, 2, 3], "answer": [4], "query_tokens": 3}""" + "\n");
        var r = CliRunner.Run("eval-retrieval", "--model", dir.Path, "--prompts", dir.File("bad.jsonl"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("bad.jsonl:1: query_tokens 3", r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
    }

    /// <summary>
    /// A random checkpoint and prompts.jsonl: per context, three prompts answered with dense's greedy
    /// continuation and, in the longer context, one whose answer is off by one token. Returns the counts dense must score.
    /// </summary>
    private static (int[] Contexts, Dictionary<int, (int Correct, int Total)> Expected) WriteModelAndPrompts(ModelFixtures.TempDir dir)
    {
        File.WriteAllText(dir.File("config.json"), ModelFixtures.MiniLlamaConfig);
        var config = ModelConfig.Load(dir.Path);
        var random = new Random();
        using (var dummy = ModelWeights.Dummy(config, seed: random.Next()))
            ModelFixtures.WriteCheckpoint(dir.Path, ModelFixtures.MiniLlamaConfig, dummy);

        int[] contexts = [64, 120];
        var expected = new Dictionary<int, (int, int)>();
        var lines = new List<string>();
        using var weights = ModelWeights.Load(dir.Path, config);
        using var engine = new InferenceEngine(config, new CpuRankGroup(config, weights, 1));
        foreach (int context in contexts)
        {
            int prompts = context == 120 ? 4 : 3;
            for (int i = 0; i < prompts; i++)
            {
                var ids = Enumerable.Range(0, context).Select(_ => random.Next(config.VocabSize)).ToArray();
                var sequence = engine.NewSequence();
                var answer = engine.Generate(sequence, new GenerationRequest(ids, AnswerTokens, new SamplingOptions(), StrategyNames.Dense)).Tokens.ToArray();
                engine.Release(sequence);
                if (i == 3) answer[1] = (answer[1] + 1) % config.VocabSize;
                lines.Add(JsonSerializer.Serialize(new { ids, answer, query_tokens = QueryTokens, context, task = "kv" }));
            }
            expected[context] = (3, prompts);
        }
        File.WriteAllLines(dir.File("prompts.jsonl"), lines);
        return (contexts, expected);
    }
}
