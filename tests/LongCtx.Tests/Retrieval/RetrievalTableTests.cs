using LongCtx.Cli;
using LongCtx.Tests.Model;

namespace LongCtx.Tests.Retrieval;

/// <summary>The demo's table and example: rows tallied from known answers, the example chosen and described.</summary>
public class RetrievalTableTests
{
    private static readonly TokenNames Names = TokenNames.Load(Path.Combine(ModelFixtures.RepoRoot, "models", "retrieval-kv"));

    /// <summary>Prompts of two contexts: a record K key value early in the document, then the question Q key.</summary>
    private static List<RetrievalPrompt> Prompts()
    {
        var prompts = new List<RetrievalPrompt>();
        foreach (var (context, recordAt, key, value) in new[] { (64, 50, 600, 1600), (64, 40, 601, 1601), (128, 5, 602, 1602), (128, 90, 603, 1603) })
        {
            var ids = new int[context];
            ids[0] = RetrievalTask.Bos;
            for (int i = 1; i < context - 2; i++) ids[i] = 16 + i % 100;
            (ids[recordAt], ids[recordAt + 1], ids[recordAt + 2]) = (RetrievalTask.K, key, value);
            (ids[^2], ids[^1]) = (RetrievalTask.Q, key);
            prompts.Add(new RetrievalPrompt(ids, [value], 2, context, "kv"));
        }
        return prompts;
    }

    private static StrategyAnswers Run(string strategy, int ranks, int[] answers, double[] ttft) =>
        new(strategy, ranks, answers.Select(a => new[] { a }).ToArray(), ttft);

    [Fact]
    public void RowsCountRightAnswersAnswersEqualToDenseAndMeanTtftPerContext()
    {
        var prompts = Prompts();
        var dense = Run("dense", 1, [1600, 1601, 1602, 7], [10, 30, 100, 300]);
        var apb = Run("apb", 4, [1600, 5, 1602, 7], [4, 8, 20, 40]);
        var denseRows = RetrievalTally.Rows(prompts, dense, dense.Answers);
        var apbRows = RetrievalTally.Rows(prompts, apb, dense.Answers);
        Assert.Equal([new Score("kv", 64, "dense", 1, 2, 2, 2, 20), new Score("kv", 128, "dense", 1, 1, 2, 2, 200)], denseRows);
        Assert.Equal([new Score("kv", 64, "apb", 4, 1, 1, 2, 6), new Score("kv", 128, "apb", 4, 1, 2, 2, 30)], apbRows);
        Assert.Equal(50.0, apbRows[0].Accuracy);
        Assert.All(RetrievalTally.Rows(prompts, apb, null), r => Assert.Equal(0, r.SameAsDense));
        Assert.Throws<ArgumentException>(() => RetrievalTally.Rows(prompts[..3], apb, null));
    }

    [Fact]
    public void ExampleIsThePromptWhereTheStrategiesDisagree()
    {
        var prompts = Prompts();
        var runs = new[] { Run("dense", 1, [1600, 1601, 1602, 1603], [1, 1, 1, 1]), Run("apb", 4, [1600, 1601, 1602, 5], [1, 1, 1, 1]) };
        Assert.Equal(3, RetrievalExample.Pick(prompts, runs));
    }

    [Fact]
    public void ExampleIsElseTheRecordFarthestFromItsQuestionAmongRightAnswers()
    {
        var prompts = Prompts();
        // Prompt 2's record (at 5 of 128) is the farthest back, but dense and apb both miss it.
        var runs = new[] { Run("dense", 1, [1600, 1601, 9, 1603], [1, 1, 1, 1]), Run("apb", 4, [1600, 1601, 9, 1603], [1, 1, 1, 1]) };
        Assert.Equal(3, RetrievalExample.Pick(prompts, runs));
        runs = [Run("dense", 1, [1600, 1601, 1602, 1603], [1, 1, 1, 1])];
        Assert.Equal(2, RetrievalExample.Pick(prompts, runs));
        Assert.Equal(5, RetrievalExample.RecordPosition(prompts[2]));
    }

    [Fact]
    public void ExampleNamesTheQuestionTheRecordAndEachAnswer()
    {
        var prompts = Prompts();
        var runs = new[] { Run("dense", 1, [1600, 1601, 1602, 1603], [1, 1, 1, 1]), Run("pass-kv", 4, [1600, 1601, 1602, 1603], [1, 1, 1, 1]),
            Run("apb", 4, [1600, 1601, 1602, 1536], [1, 1, 1, 1]) };
        var lines = RetrievalExample.Describe(prompts, 3, runs, Names).TrimEnd().Split('\n');
        Assert.Equal([
            "Example: prompt 4 of 4, 128 tokens. The question at its end: \"Q k91\"; the right answer: \"v67\".",
            "Its record \"K k91 v67\" starts at token 90 of the 126-token document (71% in), 36 tokens before the question.",
            "  dense    1 rank   v67  right",
            "  pass-kv  4 ranks  v67  right",
            "  apb      4 ranks  v0  wrong"], lines);
    }

    [Fact]
    public void ShippedTokenizerNamesTheTasksTokens()
    {
        Assert.Equal("<s> </s> Q <unk> K <unused5> f0 f495 k0 k417 k1023 v0 v23 v511",
            Names.Text([0, 1, 2, 3, 4, 5, 16, 511, 512, 929, 1535, 1536, 1559, 2047]));
        Assert.Equal("2048 -1", Names.Text([2048, -1]));
        Assert.Equal("5 6", TokenNames.Load(Path.GetTempPath()).Text([5, 6])); // no tokenizer.json: ids
    }
}
