namespace LongCtx.Cli;

/// <summary>The answers of one strategy on one rank count, one per prompt in the prompt file's order, with their TTFTs.</summary>
internal sealed record StrategyAnswers(string Strategy, int Ranks, int[][] Answers, double[] TtftMs);

/// <summary>
/// One row of eval-retrieval's table: a strategy on a rank count over the prompts of one task and context: how many
/// it answered right, how many answers equal dense's (0 without dense), and its mean time to first token.
/// </summary>
internal sealed record Score(string Task, int Context, string Strategy, int Ranks, int Correct, int SameAsDense, int Total, double MeanTtftMs)
{
    public double Accuracy => 100.0 * Correct / Total;
}

internal static class RetrievalTally
{
    /// <summary>The rows of one strategy's answers, per task and context, ordered by task then context.</summary>
    public static List<Score> Rows(IReadOnlyList<RetrievalPrompt> prompts, StrategyAnswers run, int[][]? dense)
    {
        if (run.Answers.Length != prompts.Count || run.TtftMs.Length != prompts.Count || (dense is not null && dense.Length != prompts.Count))
            throw new ArgumentException("one answer and one TTFT per prompt");
        return prompts.Select((p, i) => (p, i)).GroupBy(x => (x.p.Task, x.p.Context))
            .OrderBy(g => g.Key.Task, StringComparer.Ordinal).ThenBy(g => g.Key.Context)
            .Select(g => new Score(g.Key.Task, g.Key.Context, run.Strategy, run.Ranks,
                Correct: g.Count(x => run.Answers[x.i].SequenceEqual(x.p.Answer)),
                SameAsDense: dense is null ? 0 : g.Count(x => run.Answers[x.i].SequenceEqual(dense[x.i])),
                Total: g.Count(),
                MeanTtftMs: g.Average(x => run.TtftMs[x.i])))
            .ToList();
    }
}
