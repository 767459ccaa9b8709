using System.Text;

namespace LongCtx.Cli;

/// <summary>
/// One prompt of an eval-retrieval run shown in full after the table: its question, where the record it asks about
/// sits in the document, and each strategy's answer.
/// </summary>
internal static class RetrievalExample
{
    /// <summary>
    /// The prompt to show: the first whose answers differ between the strategies (what an approximation changed);
    /// else the one whose record lies farthest from its question among those every strategy answered right; else the first.
    /// </summary>
    public static int Pick(IReadOnlyList<RetrievalPrompt> prompts, IReadOnlyList<StrategyAnswers> runs)
    {
        for (int i = 0; i < prompts.Count; i++)
            if (runs.Any(r => !r.Answers[i].SequenceEqual(runs[0].Answers[i]))) return i;
        int best = 0, bestDistance = -1;
        for (int i = 0; i < prompts.Count; i++)
        {
            if (!runs.All(r => r.Answers[i].SequenceEqual(prompts[i].Answer)) || RecordPosition(prompts[i]) is not { } at) continue;
            int distance = prompts[i].Ids.Length - at;
            if (distance > bestDistance) (best, bestDistance) = (i, distance);
        }
        return best;
    }

    /// <summary>
    /// Where the record a prompt asks about starts: one before the first appearance of the question's last token (for
    /// the kv task, the key, whose record is K key value). Null when the token is not in the document.
    /// </summary>
    public static int? RecordPosition(RetrievalPrompt p)
    {
        int document = p.Ids.Length - p.QueryTokens, key = p.Ids[^1];
        int at = Array.IndexOf(p.Ids, key, 0, document);
        return at >= 1 ? at - 1 : null;
    }

    public static string Describe(IReadOnlyList<RetrievalPrompt> prompts, int index, IReadOnlyList<StrategyAnswers> runs, TokenNames names)
    {
        var p = prompts[index];
        int document = p.Ids.Length - p.QueryTokens;
        var s = new StringBuilder();
        s.AppendLine($"Example: prompt {index + 1} of {prompts.Count}, {p.Ids.Length:N0} tokens. The question at its end: \"{names.Text(p.Ids[document..])}\"; " +
                     $"the right answer: \"{names.Text(p.Answer)}\".");
        if (RecordPosition(p) is { } at)
        {
            // A kv record is its marker, the key (the question less its Q) and the value (the answer).
            int end = Math.Min(at + p.QueryTokens + p.Answer.Length, document);
            s.AppendLine($"Its record \"{names.Text(p.Ids[at..end])}\" starts at token {at:N0} of the {document:N0}-token document ({100.0 * at / document:0}% in), " +
                         $"{document - at:N0} tokens before the question.");
        }
        int width = runs.Max(r => r.Strategy.Length);
        foreach (var r in runs)
        {
            bool right = r.Answers[index].SequenceEqual(p.Answer);
            s.AppendLine($"  {r.Strategy.PadRight(width)}  {r.Ranks} rank{(r.Ranks == 1 ? " " : "s")}  {names.Text(r.Answers[index])}  {(right ? "right" : "wrong")}");
        }
        return s.ToString();
    }
}
