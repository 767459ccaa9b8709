using System.Text.Json.Nodes;
using LongCtx.Approximate;
using LongCtx.ContextParallel;

namespace LongCtx.Server;

/// <summary>
/// The per-request extension {"longctx": {"strategy", "allow_approximate", "query_tokens", "anchor_tokens",
/// "passing_tokens"}}: which attention prefills the prompt and, for an approximate one (star, apb, or auto
/// allowed to pick apb on more than one rank), how it splits the prompt into document and query.
/// </summary>
internal static class LongCtxExtension
{
    private const string Prefix = "longctx.";

    /// <summary>The strategy to prefill with, and the approximate options when the prefill will be approximate (null: exact).</summary>
    public static (string Strategy, ApproximateOptions? Approximate) Read(JsonObject o, int[] prompt, string promptParam, string serverStrategy, int ranks,
        RetainingHeadWeights? retainingHeads)
    {
        var ext = o.Object("longctx");
        bool allowed = ext?.Bool("allow_approximate", Prefix) ?? false;
        long? query = ext?.Integer("query_tokens", Prefix), anchor = ext?.Integer("anchor_tokens", Prefix), passing = ext?.Integer("passing_tokens", Prefix);
        if (query is < 1) throw ApiException.BadRequest("'longctx.query_tokens' must be 1 or more", Prefix + "query_tokens");
        if (anchor is < 0) throw ApiException.BadRequest("'longctx.anchor_tokens' must be 0 or more", Prefix + "anchor_tokens");
        if (passing is < 0) throw ApiException.BadRequest("'longctx.passing_tokens' must be 0 or more", Prefix + "passing_tokens");

        string? named = ext?.String("strategy", Prefix);
        string strategy = named ?? serverStrategy;
        if (!StrategyNames.All.Contains(strategy))
            throw ApiException.BadRequest($"unknown strategy '{strategy}': use one of {string.Join(", ", StrategyNames.All)}", Prefix + "strategy");
        if (strategy == StrategyNames.Dense && ranks > 1)
            throw ApiException.BadRequest($"strategy dense runs on one rank; this server has {ranks}: use pass-kv, pass-q or auto", Prefix + "strategy");
        // The operator's --strategy star|apb is consent for the requests that name no strategy; a request that names one must opt in itself.
        if (named is not null && StrategyNames.IsApproximate(named) && !allowed)
            throw ApiException.BadRequest($"strategy '{named}' is approximate: add \"allow_approximate\": true to \"longctx\" to run it", Prefix + "allow_approximate");
        // As the engine decides: auto picks apb when allowed and there is more than one rank to split over.
        bool approximate = StrategyNames.IsApproximate(strategy) || (strategy == StrategyNames.Auto && allowed && ranks > 1);
        if (!approximate) return (strategy, null);

        string runs = strategy == StrategyNames.Auto ? StrategyNames.Apb : strategy;
        int queryTokens = (int)Math.Min(query ?? ApproximateDefaults.QueryTokens(prompt.Length), int.MaxValue);
        // The tokens before the query are the document, split over the ranks: each needs at least one.
        if (prompt.Length - (long)queryTokens < ranks)
        {
            string fix = prompt.Length > ranks ? $"give 'longctx.query_tokens' of at most {prompt.Length - ranks}" : $"give a prompt of {ranks + 1} tokens or more";
            throw ApiException.BadRequest(
                $"{runs} takes the prompt's last {queryTokens} tokens as the query and splits the rest over {ranks} rank(s), but the prompt has {prompt.Length}: {fix}",
                query is null ? promptParam : Prefix + "query_tokens");
        }
        return (strategy, new ApproximateOptions(queryTokens, Clamp(anchor), Clamp(passing), retainingHeads, AllowInAuto: allowed));
    }

    private static int? Clamp(long? tokens) => tokens is { } t ? (int)Math.Min(t, int.MaxValue) : null;
}
