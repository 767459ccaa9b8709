using System.Diagnostics;
using LongCtx.Approximate;
using LongCtx.ContextParallel;
using LongCtx.Tensors;

namespace LongCtx.Engine;

/// <summary>The approximate prefills, Star Attention and APB: a context phase, then an exact query phase.</summary>
public sealed partial class InferenceEngine
{
    /// <summary>
    /// Star or APB prefill of one sequence's first turn. The prompt's last K tokens are the query, the rest
    /// the document (<see cref="ContextBlocks"/>), in blocks that even out the ranks' work (<see cref="BlockBalance"/>)
    /// unless the options ask for equal ones. Phase 1 runs every rank's [anchor copy | block | (query)]
    /// through the model with the strategy's block-local attention and keeps each block's KV. Phase 2 runs
    /// the query on every rank against all kept KV, merged by log-sum-exp (exact, as a decode step of K
    /// tokens); the query's KV stays on the last rank. The logits (and a drawn token) come from the query phase, so at
    /// most K rows are kept.
    /// </summary>
    private PrefillResult PrefillApproximate(IReadOnlyList<PrefillInput> batch, string strategy, bool argmaxAll, ApproximateOptions? options, Stopwatch clock)
    {
        if (batch.Count != 1) throw new LongCtxException($"{strategy} prefills one sequence at a time, not {batch.Count}");
        var input = batch[0];
        var (sequence, prompt) = (input.Sequence, input.NewTokens);
        if (sequence.CachedTokens > 0)
            throw new LongCtxException($"{strategy} runs a conversation's first turn only ({sequence.CachedTokens} tokens are cached): use an exact strategy for later turns");
        if (argmaxAll) throw new LongCtxException($"the argmax at every position needs an exact strategy, not {strategy}");
        if (KvCacheType == DType.F8E4M3)
            throw new SettingException(Setting.KvCacheDtype, $"(or a checkpoint's kv_cache_scheme) is for the exact strategies: {strategy} keeps a KV cache of the activation type; use an exact strategy, or bf16", "fp8");
        bool apb = strategy == StrategyNames.Apb;
        int queryTokens = options?.QueryTokens ?? ApproximateDefaults.QueryTokens(prompt.Length);
        if (queryTokens >= prompt.Length)
            throw new LongCtxException($"the query takes {queryTokens} of the prompt's {prompt.Length} tokens and leaves no document");
        if (input.KeepLast > queryTokens)
            throw new LongCtxException($"{strategy} computes logits for the query's {queryTokens} tokens only; {input.KeepLast} were asked for");
        int document = prompt.Length - queryTokens;
        ContextBlocks.RequireBlockPerRank(document, Ranks);
        int anchor = options?.AnchorTokens ?? ApproximateDefaults.AnchorTokens(apb, document, Ranks);
        int passing = apb ? options?.PassingTokens ?? ApproximateDefaults.PassingTokens(document, Ranks) : 0;
        var lengths = options?.EvenBlocks == true ? null
            : BlockBalance.Lengths(document, Ranks, Math.Min(anchor, document), passing, apb ? queryTokens : 0, BlockBalance.PairsPerRow(Config));
        var blocks = new ContextBlocks(Ranks, document, queryTokens, anchor, passing, embedQuery: apb, lengths);
        var contextLayouts = Enumerable.Range(0, Ranks).Select(blocks.ContextLayout).ToArray();
        var queryKeys = blocks.QueryKeys;
        // The query phase's rows are the query's tokens, as a prefill of them alone would number them.
        var wanted = WantedRows.Of([input with { NewTokens = prompt[document..] }]);

        var outputs = _ranks.Run(rt =>
        {
            int r = rt.Rank;
            var c = Config;
            var cache = rt.CacheOf(sequence.Id);
            var context = new AttentionStep
            {
                Rank = r,
                QueriesByRank = contextLayouts,
                KeysByRank = Enumerable.Range(0, Ranks).Select(x => contextLayouts[x].Slice(blocks.AnchorCopy(x), blocks.BlockLength(x))).ToArray(),
                Caches = [cache],
                Appends = [new KvAppend(0, blocks.AnchorCopy(r), blocks.BlockLength(r))],
            };
            var compressor = apb ? Compressor(rt, options) : null;
            try
            {
                var local = new LayerAttention(apb ? new ApbAttention(blocks, compressor!) : new StarAttention(blocks));
                // The context phase's hidden states are not needed past the last layer's KV: only the cache it filled.
                using var _ = rt.Model.Forward(blocks.ContextTokens(r, prompt), context.Queries,
                    (layer, q, k, v) => local.Attend(new AttentionLayer(rt.Backend, rt.Comm, context, layer, rt.Model.Heads, rt.Model.KvHeads, c.HeadDim, c.AttentionOf(layer)), q, k, v),
                    LayerDone(rt));
            }
            finally
            {
                (compressor as IDisposable)?.Dispose();
            }
            var query = new AttentionStep
            {
                Rank = r,
                QueriesByRank = Enumerable.Repeat(blocks.QueryLayout, Ranks).ToArray(),
                KeysByRank = queryKeys,
                Caches = [cache],
                Appends = r == Ranks - 1 ? [new KvAppend(0, 0, queryTokens)] : [],
            };
            // Every rank holds every query row, so the lead rank reads the wanted rows from its own.
            return ForwardAndGather(rt, prompt[document..], query, new LayerAttention(new DistributedDecode()), wanted, row => rt.WorldRank == _ranks.LeadRank ? row : -1, gather: false);
        });

        for (int r = 0; r < Ranks; r++) sequence.Placement.Append(r, blocks.KeptPositions(r));
        sequence.Tokens.AddRange(prompt);
        var lead = outputs[0];
        return new PrefillResult(wanted.KeptPerSequence(lead.Logits, Config.VocabSize), null, strategy, null, clock.Elapsed, blocks,
            Drawn: wanted.DrawnPerSequence(lead.Tokens, lead.TokenLogprobs));
    }

    /// <summary>APB's compressor on one rank: the model's retaining heads when it has them, else the query-attention scorer.</summary>
    private static IKvCompressor Compressor(RankRuntime rt, ApproximateOptions? options) =>
        options?.RetainingHeads is { } heads ? new RetainingHeadScorer(rt.Backend, heads, rt.TensorComm) : new QueryAttentionScorer();
}
