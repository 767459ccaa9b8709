using System.CommandLine;
using LongCtx.Approximate;
using LongCtx.ContextParallel;
using LongCtx.Model;
using LongCtx.Text;

namespace LongCtx.Cli;

/// <summary>
/// The options of the approximate strategies (star, apb): where the query is — text appended after the
/// document, or the prompt's last K tokens — the anchor and passing lengths, the block split, and the error measurement.
/// </summary>
internal sealed class ApproximateInput
{
    public readonly Option<string?> Query = new("--query") { Description = "query text, appended after the prompt (the document) for star and apb" };
    public readonly Option<string?> QueryFile = new("--query-file") { Description = "file holding the query text, appended after the prompt" };
    public readonly Option<int?> QueryTokens = new("--query-tokens") { Description = "the query is the prompt's last K tokens (default: T/16, 1 to 64)" };
    public readonly Option<int?> AnchorTokens = new("--anchor-tokens") { Description = "anchor length l_a (default: block length for star, block/4 for apb)" };
    public readonly Option<int?> PassingTokens = new("--passing-tokens") { Description = "apb: entries per KV head each rank passes on, l_p (default: block/8)" };
    public readonly Option<bool> EvenBlocks = new("--even-blocks") { Description = "star and apb: split the document into equal blocks, as the papers do (default: blocks that give every rank the same work)" };
    public readonly Option<bool> AllowApproximate = new("--allow-approximate") { Description = "let --strategy auto choose apb (approximate) on more than one rank" };
    public readonly Option<bool> MeasureError = new("--measure-error") { Description = "approximate runs: also prefill exactly (pass-kv) and report the last-position logits' error" };

    public void AddTo(Command command)
    {
        foreach (var o in new Option[] { Query, QueryFile, QueryTokens, AnchorTokens, PassingTokens, EvenBlocks, AllowApproximate, MeasureError })
            command.Options.Add(o);
    }

    /// <summary>Whether this run may be approximate: star or apb, or auto with --allow-approximate.</summary>
    public bool Wanted(ParseResult r, string strategy) =>
        StrategyNames.IsApproximate(strategy) || (strategy == StrategyNames.Auto && r.GetValue(AllowApproximate));

    /// <summary>The prompt with any query text appended, and how many of its last tokens are the query.</summary>
    public (int[] Tokens, int? QueryTokens) Split(ParseResult r, int[] prompt, Func<Tokenizer> tokenizer)
    {
        string? text = r.GetValue(Query), file = r.GetValue(QueryFile);
        int? k = r.GetValue(QueryTokens);
        int given = (text is null ? 0 : 1) + (file is null ? 0 : 1) + (k is null ? 0 : 1);
        if (given > 1) throw new LongCtxException("give at most one of --query, --query-file, --query-tokens");
        if (k is { } last)
        {
            if (last < 1 || last >= prompt.Length) throw new LongCtxException($"--query-tokens {last} must be at least 1 and less than the prompt's {prompt.Length} tokens");
            return (prompt, last);
        }
        if (file is not null) text = PromptInput.ReadText(file);
        if (text is null) return (prompt, null);
        // The query continues the prompt: no BOS of its own.
        var query = tokenizer().Encode(text, addSpecialTokens: false);
        if (query.Length == 0) throw new LongCtxException("the query is empty");
        return ([.. prompt, .. query], query.Length);
    }

    public ApproximateOptions Options(ParseResult r, int promptTokens, int? queryTokens, RetainingHeadWeights? heads)
    {
        int? anchor = r.GetValue(AnchorTokens), passing = r.GetValue(PassingTokens);
        if (anchor < 0) throw new LongCtxException("--anchor-tokens must be 0 or more");
        if (passing < 0) throw new LongCtxException("--passing-tokens must be 0 or more");
        return new ApproximateOptions(queryTokens ?? ApproximateDefaults.QueryTokens(promptTokens), anchor, passing, heads, r.GetValue(AllowApproximate), r.GetValue(EvenBlocks));
    }

    /// <summary>The retaining heads of the model directory, when it has <see cref="RetainingHeadWeights.FileName"/>.</summary>
    public static RetainingHeadWeights? Heads(string? modelDirectory, ModelConfig config) =>
        modelDirectory is null ? null : RetainingHeadWeights.TryLoad(modelDirectory, config);
}
