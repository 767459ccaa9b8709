using System.Diagnostics;
using LongCtx.Approximate;
using LongCtx.ContextParallel;
using LongCtx.Sampling;

namespace LongCtx.Engine;

/// <summary>Prefill: each sequence's new tokens sharded over the ranks, against the KV it has cached.</summary>
public sealed partial class InferenceEngine
{
    /// <summary>
    /// Prefills the new tokens of each sequence (a first turn, or a later turn against its cached KV) and returns, per
    /// sequence, the logits [keepLast × vocab] of its last keepLast new tokens (at least one) and, with
    /// <paramref name="promptLogprobs"/> (that many most likely tokens a position), the logprobs of its new tokens after
    /// the first. Star and APB (and auto, when <paramref name="approximate"/> allows it) run <see cref="PrefillApproximate"/>.
    /// </summary>
    public PrefillResult Prefill(IReadOnlyList<(Sequence Sequence, int[] NewTokens)> batch, string strategy, int keepLast = 1, bool argmaxAll = false,
        ApproximateOptions? approximate = null, int? promptLogprobs = null) =>
        Prefill(batch.Select(b => new PrefillInput(b.Sequence, b.NewTokens)
        {
            KeepLast = Math.Max(1, keepLast),
            // Each new token's successor, whose logprob its row gives (the last has none).
            Scoring = promptLogprobs is { } top ? (b.NewTokens.Skip(1).Append(-1).ToArray(), top) : null,
        }).ToList(), strategy, approximate, argmaxAll);

    /// <summary>
    /// Prefills each input's new tokens and brings back what each asks for: kept logits, a drawn token, the prompt's
    /// logprobs. Star and APB (and auto, when <paramref name="approximate"/> allows it) run <see cref="PrefillApproximate"/>.
    /// </summary>
    public PrefillResult Prefill(IReadOnlyList<PrefillInput> batch, string strategy, ApproximateOptions? approximate = null, bool argmaxAll = false)
    {
        if (OnPrefillProgress is not { } listener) return PrefillAny(batch, strategy, approximate, argmaxAll);
        // Every piece of a chunked prefill runs every layer; an approximate prefill's context phase is counted (its query
        // phase is a few rows).
        int passes = !Approximates(strategy, approximate) && PrefillChunkTokens is { } chunk && batch.Sum(b => (long)b.NewTokens.Length) > chunk
            ? batch.Sum(b => (b.NewTokens.Length + chunk - 1) / chunk) : 1;
        _progress = new PrefillProgressCounter(Config.NumLayers * passes, listener);
        try { return PrefillAny(batch, strategy, approximate, argmaxAll); }
        finally { _progress = null; }
    }

    private PrefillResult PrefillAny(IReadOnlyList<PrefillInput> batch, string strategy, ApproximateOptions? approximate, bool argmaxAll)
    {
        var clock = Stopwatch.StartNew();
        StrategyNames.Validate(strategy);
        foreach (var input in batch)
        {
            CheckTokens(input.Sequence, input.NewTokens);
            foreach (var top in new[] { input.Scoring?.Top, input.DrawLogprobs })
                if (top is < 0 or > Logprobs.MaxTop) throw new SettingException(Setting.Logprobs, $"must be 0 to {Logprobs.MaxTop} (most likely tokens listed)", top);
        }
        if (Approximates(strategy, approximate))
        {
            if (batch.Any(b => b.Scoring is not null)) throw new LongCtxException($"the prompt's logprobs need an exact strategy, not {strategy}");
            return PrefillApproximate(batch, strategy == StrategyNames.Auto ? StrategyNames.Apb : strategy, argmaxAll, approximate, clock);
        }
        if (PrefillChunkTokens is { } chunk && batch.Sum(b => (long)b.NewTokens.Length) > chunk)
            return PrefillInChunks(batch, strategy, argmaxAll, chunk, clock);
        return PrefillExact(batch, strategy, argmaxAll, clock);
    }

    /// <summary>Whether a prefill runs Star or APB: named, or auto allowed to pick APB on more than one rank.</summary>
    private bool Approximates(string strategy, ApproximateOptions? approximate) =>
        StrategyNames.IsApproximate(strategy) || (strategy == StrategyNames.Auto && approximate?.AllowInAuto == true && Ranks > 1);

    /// <summary>An exact prefill in one piece.</summary>
    private PrefillResult PrefillExact(IReadOnlyList<PrefillInput> batch, string strategy, bool argmaxAll, Stopwatch clock)
    {
        var inputs = batch.Select((b, i) => new SequenceInput(i, b.NewTokens.Length, b.Sequence.Placement)).ToList();
        var plan = ShardPlan.LoadBalanced(inputs, Ranks);
        var (attention, choice) = Choose(strategy, plan);
        var allTokens = batch.SelectMany(b => b.NewTokens).ToArray();
        var wanted = WantedRows.Of(batch);

        var results = _ranks.Run(rt =>
        {
            var shard = plan.Shards[rt.Rank];
            var step = new AttentionStep
            {
                Rank = rt.Rank,
                QueriesByRank = plan.Shards.Select(s => s.Queries).ToArray(),
                KeysByRank = plan.Shards.Select(s => s.Keys).ToArray(),
                Caches = batch.Select(b => rt.CacheOf(b.Sequence.Id)).ToList(),
                Appends = AppendsOf(shard),
            };
            foreach (var a in step.Appends) step.Caches[a.Cache].Reserve(step.Caches[a.Cache].Count + a.Count);
            var ids = shard.BatchIndex.Select(i => allTokens[i]).ToArray();
            var localRows = new Dictionary<int, int>(shard.Rows);
            for (int i = 0; i < shard.Rows; i++) localRows[shard.BatchIndex[i]] = i;
            return ForwardAndGather(rt, ids, step, attention, wanted, row => localRows.GetValueOrDefault(row, -1), gather: true, argmaxAll, LayerDone(rt));
        });

        for (int i = 0; i < batch.Count; i++)
        {
            var seq = batch[i].Sequence;
            foreach (var shard in plan.Shards)
                seq.Placement.Append(shard.Rank, Enumerable.Range(0, shard.Rows).Where(r => shard.Queries.SeqIds[r] == i).Select(r => shard.Queries.Positions[r]));
            seq.Tokens.AddRange(batch[i].NewTokens);
        }
        IReadOnlyList<int[]>? argmax = null;
        if (argmaxAll)
        {
            if (results.Length != Ranks * TensorRanks) throw new LongCtxException("the argmax at every position needs every rank in this process");
            var all = new int[plan.TotalNewTokens];
            // Results come in world-rank order; tensor rank 0 of each context rank speaks for its shard.
            for (int r = 0; r < Ranks; r++)
                for (int i = 0; i < plan.Shards[r].Rows; i++) all[plan.Shards[r].BatchIndex[i]] = results[r * TensorRanks].ArgmaxAll![i];
            argmax = batch.Select((b, i) => all.AsSpan(batch.Take(i).Sum(x => x.NewTokens.Length), b.NewTokens.Length).ToArray()).ToList();
        }
        var lead = results[0];
        return new PrefillResult(wanted.KeptPerSequence(lead.Logits, Config.VocabSize), argmax, attention.Name, choice, clock.Elapsed,
            PromptLogprobs: wanted.ScoredPerSequence(lead.Scored), Drawn: wanted.DrawnPerSequence(lead.Tokens, lead.TokenLogprobs));
    }

    private static List<KvAppend> AppendsOf(RankShard shard)
    {
        var appends = new List<KvAppend>();
        int row = 0;
        while (row < shard.Rows)
        {
            int seq = shard.Queries.SeqIds[row], start = row;
            while (row < shard.Rows && shard.Queries.SeqIds[row] == seq) row++;
            appends.Add(new KvAppend(seq, start, row - start));
        }
        return appends;
    }
}
