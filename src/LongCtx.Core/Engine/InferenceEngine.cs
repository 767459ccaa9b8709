using System.Diagnostics;
using System.Runtime.InteropServices;
using LongCtx.Backends;
using LongCtx.Approximate;
using LongCtx.ContextParallel;
using LongCtx.Model;
using LongCtx.Sampling;
using LongCtx.Tensors;
namespace LongCtx.Engine;

/// <summary>
/// One prefill's outcome: the logits kept for each sequence (and, when asked, the argmax at every new
/// position, and the prompt's logprobs: entry j is new token j + 1's at row j) and how attention was run;
/// Blocks is the document/query split of an approximate run.
/// </summary>
public sealed record PrefillResult(IReadOnlyList<float[]> Logits, IReadOnlyList<int[]>? ArgmaxAll, string Strategy, StrategyChoice? Choice, TimeSpan Elapsed,
    ContextBlocks? Blocks = null, IReadOnlyList<PositionLogprobs[]>? PromptLogprobs = null);

/// <summary>Rows of a forward pass whose next token's logprobs are wanted: the rows, those tokens, and how many most likely tokens each lists.</summary>
internal sealed record ScoredRows(List<int> Rows, int[] Tokens, int Top);

/// <summary>What a rank's forward pass brings back: the wanted rows' logits, or tokens (drawn, or argmax at every row), and logprobs.</summary>
internal sealed record RankOutput(float[]? Logits, int[]? Tokens, PositionLogprobs[]? Logprobs = null);

/// <summary>
/// Runs prefill and decode of a batch of sequences over the ranks of a group. Coordinates on the host:
/// builds the shard plan, picks the strategy, runs every rank's forward pass at once, gathers the
/// hidden states whose logits are wanted, and keeps each sequence's KV placement up to date.
/// </summary>
public sealed partial class InferenceEngine : IDisposable
{
    private readonly IRankGroup _ranks;
    private int _nextSequenceId;

    public InferenceEngine(ModelConfig config, IRankGroup ranks, HardwareRates? rates = null)
    {
        Config = config;
        _ranks = ranks;
        Rates = rates;
    }

    public ModelConfig Config { get; }
    /// <summary>Context-parallel ranks: shards of the context (each one TensorRanks GPUs under tensor parallelism).</summary>
    public int Ranks => _ranks.ContextRanks;
    public int TensorRanks => _ranks.TensorRanks;
    public string Device => _ranks.Device;
    /// <summary>C and BW for the automatic choice; measured on first need when not configured.</summary>
    public HardwareRates? Rates { get; private set; }

    /// <summary>
    /// Exact prefills of more new tokens than this run in pieces of at most this many (<see cref="PrefillInChunks"/>);
    /// null: whole. Bounds activation memory on long prompts, as vLLM's chunked prefill does.
    /// </summary>
    public int? PrefillChunkTokens
    {
        get => _prefillChunkTokens;
        init => _prefillChunkTokens = value is null or >= 1 ? value
            : throw new LongCtxException($"--prefill-chunk {value} must be 1 or more (or left out to prefill whole)");
    }

    private readonly int? _prefillChunkTokens;

    /// <summary>Whether the ranks' KV caches hold FP8 codes (<see cref="ModelReplica.KvCache"/>): the ring then moves one byte an element.</summary>
    public bool KvCacheIsFp8 => _kvCacheIsFp8 ??= _ranks.Run(rt => rt.Model.KvCache is not null)[0];

    private bool? _kvCacheIsFp8;

    public Sequence NewSequence() => new(Interlocked.Increment(ref _nextSequenceId), Ranks);

    /// <summary>
    /// Prefills the new tokens of each sequence (a first turn, or a later turn against its cached KV) and
    /// returns, per sequence, the logits [keepLast × vocab] of its last keepLast new tokens and, with
    /// <paramref name="promptLogprobs"/> (that many most likely tokens a position), the logprobs of its new tokens
    /// after the first, computed where the logits are. Star and APB (and auto, when <paramref name="approximate"/>
    /// allows it) run <see cref="PrefillApproximate"/>.
    /// </summary>
    public PrefillResult Prefill(IReadOnlyList<(Sequence Sequence, int[] NewTokens)> batch, string strategy, int keepLast = 1, bool argmaxAll = false,
        ApproximateOptions? approximate = null, int? promptLogprobs = null)
    {
        var clock = Stopwatch.StartNew();
        StrategyNames.Validate(strategy);
        foreach (var (seq, tokens) in batch) CheckTokens(seq, tokens);
        if (promptLogprobs is < 0 or > Logprobs.MaxTop) throw new LongCtxException($"prompt logprobs list 0 to {Logprobs.MaxTop} most likely tokens, not {promptLogprobs}");
        if (StrategyNames.IsApproximate(strategy) || (strategy == StrategyNames.Auto && approximate?.AllowInAuto == true && Ranks > 1))
        {
            if (promptLogprobs is not null) throw new LongCtxException($"the prompt's logprobs need an exact strategy, not {strategy}");
            return PrefillApproximate(batch, strategy == StrategyNames.Auto ? StrategyNames.Apb : strategy, keepLast, argmaxAll, approximate, clock);
        }
        if (PrefillChunkTokens is { } chunk && batch.Sum(b => (long)b.NewTokens.Length) > chunk)
            return PrefillInChunks(batch, strategy, keepLast, argmaxAll, promptLogprobs, chunk, clock);
        // Each new token's successor, whose logprob its row gives (the last has none).
        var next = promptLogprobs is null ? null : batch.Select(b => b.NewTokens.Skip(1).Append(-1).ToArray()).ToArray();
        return PrefillExact(batch, strategy, keepLast, argmaxAll, promptLogprobs is { } top ? (top, next!) : null, clock);
    }

    /// <summary>
    /// An exact prefill in one piece; <paramref name="scoring"/> gives, per sequence and new token, the token whose
    /// logprob its row gives (−1: none), and how many most likely tokens each lists.
    /// </summary>
    private PrefillResult PrefillExact(IReadOnlyList<(Sequence Sequence, int[] NewTokens)> batch, string strategy, int keepLast, bool argmaxAll,
        (int Top, int[][] Next)? scoring, Stopwatch clock)
    {
        var inputs = batch.Select((b, i) => new SequenceInput(i, b.NewTokens.Length, b.Sequence.Placement)).ToList();
        var plan = ShardPlan.LoadBalanced(inputs, Ranks);
        var (attention, choice) = Choose(strategy, plan);
        var allTokens = batch.SelectMany(b => b.NewTokens).ToArray();

        // Rows whose logits are wanted, in batch order.
        var wanted = new List<int>();
        int offset = 0;
        var keep = new int[batch.Count];
        for (int i = 0; i < batch.Count; i++)
        {
            int n = batch[i].NewTokens.Length;
            keep[i] = Math.Min(Math.Max(1, keepLast), n);
            for (int j = n - keep[i]; j < n; j++) wanted.Add(offset + j);
            offset += n;
        }
        ScoredRows? scored = null;
        if (scoring is { } sc)
        {
            var rows = new List<int>();
            var tokens = new List<int>();
            offset = 0;
            for (int i = 0; i < batch.Count; i++)
            {
                for (int j = 0; j < batch[i].NewTokens.Length; j++)
                    if (sc.Next[i][j] >= 0) { rows.Add(offset + j); tokens.Add(sc.Next[i][j]); }
                offset += batch[i].NewTokens.Length;
            }
            scored = new ScoredRows(rows, [.. tokens], sc.Top);
        }

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
            return ForwardAndGather(rt, ids, step, attention, wanted, row => localRows.GetValueOrDefault(row, -1), argmaxAll: argmaxAll, scored: scored);
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
                for (int i = 0; i < plan.Shards[r].Rows; i++) all[plan.Shards[r].BatchIndex[i]] = results[r * TensorRanks].Tokens![i];
            argmax = batch.Select((b, i) => all.AsSpan(batch.Take(i).Sum(x => x.NewTokens.Length), b.NewTokens.Length).ToArray()).ToList();
        }
        IReadOnlyList<PositionLogprobs[]>? promptLogprobs = null;
        if (scoring is { } s)
        {
            var all = results[0].Logprobs!;
            int at = 0;
            promptLogprobs = s.Next.Select(next =>
            {
                int count = next.Count(t => t >= 0);
                var mine = all.AsSpan(at, count).ToArray();
                at += count;
                return mine;
            }).ToList();
        }
        return new PrefillResult(Split(results[0].Logits!, keep), argmax, attention.Name, choice, clock.Elapsed, PromptLogprobs: promptLogprobs);
    }

    /// <summary>
    /// One decode step for a batch of sequences, one new token each: every rank runs the tokens, each
    /// token's KV is stored round-robin on rank position mod N. Returns each sequence's next-token logits.
    /// </summary>
    public IReadOnlyList<float[]> Decode(IReadOnlyList<(Sequence Sequence, int Token)> batch)
    {
        var logits = DecodeStep(batch, draws: null).Logits!;
        return Split(logits, Enumerable.Repeat(1, batch.Count).ToArray());
    }

    /// <summary>
    /// <see cref="Decode"/> with the sampling done where the logits are: each sequence's next token for its draw
    /// (<see cref="TokenPicker.Pick"/>, greedy: <see cref="Sampler.ArgMax"/>), so only the tokens come back from the GPU.
    /// </summary>
    public int[] DecodeTokens(IReadOnlyList<(Sequence Sequence, int Token)> batch, IReadOnlyList<TokenDraw> draws) => DecodeTokens(batch, draws, null).Tokens;

    /// <summary>
    /// <see cref="DecodeTokens(IReadOnlyList{ValueTuple{Sequence, int}}, IReadOnlyList{TokenDraw})"/> and, with
    /// <paramref name="logprobsTop"/>, each drawn token's logprob and its position's most likely tokens, also
    /// computed where the logits are.
    /// </summary>
    public (int[] Tokens, PositionLogprobs[]? Logprobs) DecodeTokens(IReadOnlyList<(Sequence Sequence, int Token)> batch, IReadOnlyList<TokenDraw> draws, int? logprobsTop)
    {
        if (draws.Count != batch.Count) throw new ArgumentException($"{draws.Count} draws for a batch of {batch.Count}");
        if (logprobsTop is < 0 or > Logprobs.MaxTop) throw new LongCtxException($"logprobs list 0 to {Logprobs.MaxTop} most likely tokens, not {logprobsTop}");
        var output = DecodeStep(batch, draws, logprobsTop);
        return (output.Tokens!, output.Logprobs);
    }

    private RankOutput DecodeStep(IReadOnlyList<(Sequence Sequence, int Token)> batch, IReadOnlyList<TokenDraw>? draws, int? logprobsTop = null)
    {
        foreach (var (seq, token) in batch) CheckTokens(seq, [token]);
        int n = batch.Count;
        var positions = batch.Select(b => b.Sequence.CachedTokens).ToArray();
        var owners = positions.Select(p => p % Ranks).ToArray();
        var queries = new TokenLayout(Enumerable.Range(0, n).ToArray(), positions);
        var keys = new TokenLayout[Ranks];
        for (int r = 0; r < Ranks; r++)
        {
            var layout = new TokenLayoutBuilder(batch.Sum(b => b.Sequence.Placement.On(r).Length) + n);
            for (int i = 0; i < n; i++)
            {
                layout.Append(i, batch[i].Sequence.Placement.On(r));
                if (owners[i] == r) layout.Append(i, positions[i]);
            }
            keys[r] = layout.Build();
        }
        var tokens = batch.Select(b => b.Token).ToArray();
        var all = Enumerable.Range(0, n).ToList();
        var decode = new DistributedDecode();
        var results = _ranks.Run(rt =>
        {
            var step = new AttentionStep
            {
                Rank = rt.Rank,
                QueriesByRank = Enumerable.Repeat(queries, Ranks).ToArray(),
                KeysByRank = keys,
                Caches = batch.Select(b => rt.CacheOf(b.Sequence.Id)).ToList(),
                Appends = Enumerable.Range(0, n).Where(i => owners[i] == rt.Rank).Select(i => new KvAppend(i, i, 1)).ToList(),
            };
            // Every rank holds every row, so no gathering is needed: rank 0 reads its own.
            return ForwardAndGather(rt, tokens, step, decode, all, row => rt.WorldRank == _ranks.LeadRank ? row : -1, gather: false, draws: draws, logprobsTop: logprobsTop);
        });
        for (int i = 0; i < n; i++)
        {
            batch[i].Sequence.Placement.Append(owners[i], [positions[i]]);
            batch[i].Sequence.Tokens.Add(tokens[i]);
        }
        return results[0];
    }

    /// <summary>Frees a sequence's KV on every rank.</summary>
    public void Release(Sequence sequence) => _ranks.Run(rt => { rt.Release(sequence.Id); return 0; });

    /// <summary>Which attention implementation ran, by the lead rank's account (every rank runs the same calls); null where there is one.</summary>
    public string? AttentionReport() => _ranks.Run(rt => rt.Backend.Info.AttentionReport())[0];

    /// <summary>Bytes of KV cache held on each rank.</summary>
    public long[] KvBytesPerRank() => _ranks.Run(rt => rt.Caches.Values.Sum(c => c.Bytes));

    private (IAttentionStrategy, StrategyChoice?) Choose(string strategy, ShardPlan plan)
    {
        switch (strategy)
        {
            case StrategyNames.Dense:
                if (Ranks != 1) throw new LongCtxException($"strategy dense runs on one rank; with --ranks {Ranks} use pass-kv, pass-q or auto");
                return (new LocalAttention(), null);
            case StrategyNames.PassKv: return (new RingPassKv(), null);
            case StrategyNames.PassQ: return (new RingPassQ(), null);
        }
        Rates ??= MeasureRates();
        long t = plan.TotalNewTokens, p = plan.Sequences.Sum(s => (long)s.CachedTokens);
        var choice = StrategyChoice.Decide(t, p, Ranks, Config.NumHeads, Config.NumKvHeads, bytesPerElement: KvCacheIsFp8 ? 1 : 2, Rates);
        IAttentionStrategy chosen = choice.Strategy == StrategyNames.PassKv ? new RingPassKv() : new RingPassQ();
        return (chosen, choice);
    }

    /// <summary>C and BW from every rank at once; the slowest rank sets the pace of a ring.</summary>
    private HardwareRates MeasureRates()
    {
        var rates = _ranks.Run(rt => RateProbe.Measure(rt.Backend, rt.Comm, rt.TensorComm, rt.Model.Heads, rt.Model.KvHeads, Config.HeadDim));
        return new HardwareRates(rates.Min(r => r.AttentionFlopsPerSecond), rates.Min(r => r.LinkBytesPerSecond));
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

    /// <summary>
    /// Runs the model on a rank's rows, then brings the wanted rows' hidden states to every rank of its ring
    /// (an all-reduce of a buffer where each rank fills only its own rows — adding zeros is exact) and has
    /// the lead rank of each process compute their logits (every rank has them after the all-reduce; the
    /// ranks of a tensor-parallel group hold the same hidden states, so each ring has them all).
    /// </summary>
    private RankOutput ForwardAndGather(RankRuntime rt, int[] ids, AttentionStep step, IAttentionStrategy strategy,
        List<int> wanted, Func<int, int> localRowOf, bool gather = true, bool argmaxAll = false, IReadOnlyList<TokenDraw>? draws = null,
        int? logprobsTop = null, ScoredRows? scored = null)
    {
        var model = rt.Model;
        var c = model.Config;
        var b = rt.Backend;
        using var hidden = model.Forward(ids, step.Queries,
            (layer, q, k, v) => strategy.Attend(new AttentionLayer(b, rt.Comm, step, layer, model.Heads, model.KvHeads, c.HeadDim), q, k, v));
        using var rows = GatherRows(rt, hidden, wanted, localRowOf, gather);
        using var scoredRows = scored is null ? null : GatherRows(rt, hidden, scored.Rows, localRowOf, gather);
        if (rt.WorldRank != _ranks.LeadRank) return new RankOutput(null, argmaxAll ? ArgmaxOfRows(model, hidden) : null);
        // Drawn where the logits are: the wanted rows' tokens (and their logprobs) instead of their logits.
        if (draws is not null)
        {
            var (tokens, logprobs) = model.DrawTokens(rows, [.. draws], logprobsTop);
            return new RankOutput(null, tokens, logprobs);
        }
        return new RankOutput(model.Logits(rows), argmaxAll ? ArgmaxOfRows(model, hidden) : null,
            scored is null ? null : model.Logprobs(scoredRows!, scored.Tokens, scored.Top));
    }

    /// <summary>
    /// The hidden states of the given rows of the batch, in that order, on every rank: each rank copies the ones it
    /// holds (runs of consecutive rows in one copy, the rest in one launch) and, with gather, an all-reduce adds the
    /// ranks' buffers, zero where a rank holds nothing.
    /// </summary>
    private static Tensor GatherRows(RankRuntime rt, Tensor hidden, List<int> batchRows, Func<int, int> localRowOf, bool gather)
    {
        var b = rt.Backend;
        var rows = b.Allocate(b.ActivationType, batchRows.Count, hidden.Shape[1]);
        var copies = new List<(Tensor Source, Tensor Destination)>();
        for (int i = 0; i < batchRows.Count;)
        {
            int local = localRowOf(batchRows[i]), run = 1;
            if (local < 0) { i++; continue; }
            while (i + run < batchRows.Count && localRowOf(batchRows[i + run]) == local + run) run++;
            copies.Add((hidden.SliceRows(local, run), rows.SliceRows(i, run)));
            i += run;
        }
        b.CopyEach(CollectionsMarshal.AsSpan(copies)); // one launch for a decode step's rows on the GPU
        if (gather) rt.Comm.AllReduceSum(rows);
        return rows;
    }

    /// <summary>The most likely next token after every row, computed in slices so the logits of a long prompt never exist at once.</summary>
    private static int[] ArgmaxOfRows(ModelReplica model, Tensor hidden)
    {
        const int slice = 128;
        var result = new int[hidden.Rows];
        int vocab = model.Config.VocabSize;
        for (int start = 0; start < hidden.Rows; start += slice)
        {
            int n = Math.Min(slice, hidden.Rows - start);
            var logits = model.Logits(hidden.SliceRows(start, n));
            for (int i = 0; i < n; i++) result[start + i] = Sampler.ArgMax(logits.AsSpan(i * vocab, vocab));
        }
        return result;
    }

    private static float[][] Split(float[] logits, int[] rowsPerSequence)
    {
        int vocab = logits.Length / Math.Max(1, rowsPerSequence.Sum());
        var result = new float[rowsPerSequence.Length][];
        int at = 0;
        for (int i = 0; i < rowsPerSequence.Length; i++)
        {
            result[i] = logits.AsSpan(at * vocab, rowsPerSequence[i] * vocab).ToArray();
            at += rowsPerSequence[i];
        }
        return result;
    }

    private void CheckTokens(Sequence seq, int[] tokens)
    {
        if (tokens.Length == 0) throw new LongCtxException("a prefill needs at least one new token");
        long total = (long)seq.CachedTokens + tokens.Length;
        if (total > Config.MaxPositionEmbeddings)
            throw new LongCtxException($"the prompt needs {total} positions but the model allows {Config.MaxPositionEmbeddings} (max_position_embeddings in config.json): shorten the prompt");
        foreach (var id in tokens)
            if ((uint)id >= (uint)Config.VocabSize)
                throw new LongCtxException($"token id {id} is outside the vocabulary (size {Config.VocabSize})");
    }

    public void Dispose() => _ranks.Dispose();
}
