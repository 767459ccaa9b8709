using LongCtx.ContextParallel;
using LongCtx.Model;
using LongCtx.Tensors;

namespace LongCtx.Engine;

/// <summary>
/// Runs prefill and decode of a batch of sequences over the ranks of a group. Coordinates on the host:
/// builds the shard plan, picks the strategy, runs every rank's forward pass at once, gathers the
/// hidden states whose results are wanted, and keeps each sequence's KV placement up to date. What to run
/// when, for many requests, is <see cref="EngineLoop"/>'s.
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
            : throw new SettingException(Setting.PrefillChunk, "must be 1 or more (or none, to prefill whole)", value);
    }

    private readonly int? _prefillChunkTokens;

    /// <summary>
    /// What the ranks' KV caches hold (<see cref="ModelReplica.KvCacheType"/>). Its size is the heuristic's e, the bytes
    /// a ring block moves an element.
    /// </summary>
    public DType KvCacheType => _kvCacheType ??= _ranks.Run(rt => rt.Model.KvCacheType)[0];

    private DType? _kvCacheType;

    /// <summary>
    /// Told after each layer of a prefill, on the lead rank's thread. Set for a person watching: on a GPU each report
    /// waits for the layer to finish, which costs the host's lead over the device.
    /// </summary>
    public Action<PrefillProgress>? OnPrefillProgress { get; set; }

    private PrefillProgressCounter? _progress;

    /// <summary>The lead rank's report of each layer to the running prefill's progress, if anyone listens.</summary>
    private Action<Tensor>? LayerDone(RankRuntime rt) =>
        _progress is { } progress && rt.WorldRank == _ranks.LeadRank ? hidden => progress.LayerDone(rt.Backend, hidden) : null;

    public Sequence NewSequence() => new(Interlocked.Increment(ref _nextSequenceId), Ranks);

    /// <summary>Frees a sequence's KV on every rank.</summary>
    public void Release(Sequence sequence) => _ranks.Run(rt => { rt.Release(sequence.Id); return 0; });

    /// <summary>Which attention implementation ran, by the lead rank's account (every rank runs the same calls); null where there is one.</summary>
    public string? AttentionReport() => _ranks.Run(rt => rt.Backend.Info.AttentionReport())[0];

    /// <summary>Bytes of KV cache held on each rank.</summary>
    public long[] KvBytesPerRank() => _ranks.Run(rt => rt.Caches.Values.Sum(c => c.Bytes));

    /// <summary>Memory still to be had on the rank that has the least (<see cref="Backends.IDeviceInfo.AvailableMemoryBytes"/>).</summary>
    public long AvailableMemoryBytes() => _ranks.Run(rt => rt.Backend.Info.AvailableMemoryBytes()).Min();

    /// <summary>Bytes of K and V one position takes on the rank that holds it (its share of the KV heads under tensor parallelism).</summary>
    public long KvBytesPerToken() => _ranks.Run(rt => 2L * Config.NumLayers * rt.Model.KvHeads * Config.HeadDim * rt.Backend.ActivationType.SizeOf()).Max();

    /// <summary>Bytes of the KV rows each rank holds (sliding-window layers: their last W positions), without the room for more.</summary>
    public long[] KvRowBytesPerRank() => _ranks.Run(rt => rt.Caches.Values.Sum(c => c.HeldBytes));

    /// <summary>
    /// The full-attention layers' strategy (the heuristic weighs only them: a sliding-window layer's KV is at most W
    /// rows a rank) with the halo exchange for sliding-window layers.
    /// </summary>
    private (IAttentionStrategy, StrategyChoice?) Choose(string strategy, ShardPlan plan)
    {
        switch (strategy)
        {
            case StrategyNames.Dense:
                if (Ranks != 1) throw new SettingException(Setting.Strategy, $"runs on one rank; with {Ranks} ranks use pass-kv, pass-q or auto", StrategyNames.Dense);
                return (new LayerAttention(new LocalAttention()), null);
            case StrategyNames.PassKv: return (new LayerAttention(new RingPassKv(), new HaloAttention()), null);
            case StrategyNames.PassQ: return (new LayerAttention(new RingPassQ(), new HaloAttention()), null);
        }
        Rates ??= MeasureRates();
        long t = plan.TotalNewTokens, p = plan.Sequences.Sum(s => (long)s.CachedTokens);
        var choice = StrategyChoice.Decide(t, p, Ranks, Config.NumHeads, Config.NumKvHeads, KvCacheType.SizeOf(), Rates);
        IAttentionStrategy chosen = choice.Strategy == StrategyNames.PassKv ? new RingPassKv() : new RingPassQ();
        return (new LayerAttention(chosen, new HaloAttention()), choice);
    }

    /// <summary>C and BW from every rank at once; the slowest rank sets the pace of a ring.</summary>
    private HardwareRates MeasureRates()
    {
        var rates = _ranks.Run(rt => RateProbe.Measure(rt.Backend, rt.Comm, rt.TensorComm, rt.Model.Heads, rt.Model.KvHeads, Config.HeadDim));
        return new HardwareRates(rates.Min(r => r.AttentionFlopsPerSecond), rates.Min(r => r.LinkBytesPerSecond));
    }

    private void CheckTokens(Sequence seq, int[] tokens)
    {
        if (tokens.Length == 0) throw new LongCtxException("a prefill needs at least one new token");
        long total = (long)seq.CachedTokens + tokens.Length;
        if (total > Config.MaxPositionEmbeddings)
            throw new ContextLengthException(total, Config.MaxPositionEmbeddings);
        foreach (var id in tokens)
            if ((uint)id >= (uint)Config.VocabSize)
                throw new LongCtxException($"token id {id} is outside the vocabulary (size {Config.VocabSize})");
    }

    public void Dispose() => _ranks.Dispose();
}
