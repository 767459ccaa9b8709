using LongCtx.Backends;
using LongCtx.Comm;
using LongCtx.Tensors;

namespace LongCtx.ContextParallel;

/// <summary>Rows [Row, Row+Count) of this rank's new tokens store their KV in cache number <see cref="Cache"/>.</summary>
public readonly record struct KvAppend(int Cache, int Row, int Count);

/// <summary>
/// What one rank knows about one forward pass (a prefill batch or a decode step), the same for every
/// layer: the query layout of every rank (pass-Q sends queries around), the KV layout every rank holds
/// once this pass's new KV is stored (pass-KV sends KV around), this rank's caches in batch order, and
/// which new rows it stores where. Every rank builds the same layouts from the same plan, so nothing
/// but tensors travels between ranks. Sliding-window layers hold fewer keys: <see cref="Windowed"/>.
/// </summary>
public sealed class AttentionStep
{
    public required int Rank { get; init; }
    public required TokenLayout[] QueriesByRank { get; init; }
    public required TokenLayout[] KeysByRank { get; init; }
    public required IReadOnlyList<SequenceKv> Caches { get; init; }
    public required IReadOnlyList<KvAppend> Appends { get; init; }

    public int Ranks => KeysByRank.Length;
    public TokenLayout Queries => QueriesByRank[Rank];
    public TokenLayout Keys => KeysByRank[Rank];

    private readonly Dictionary<TokenLayout, IReadOnlyList<CachePart>?> _parts = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<int, WindowedKeys> _windowed = [];

    /// <summary>
    /// This rank's queries and keys cut per cache — cache i holds sequence i's KV, the rows of <paramref name="keys"/>
    /// (<see cref="Keys"/>, or a window's <see cref="WindowedKeys.KeysByRank"/>) of sequence i — for attention that reads
    /// each cache where it is. Null when a sequence's query or key rows are not contiguous. Asked once the pass's new KV
    /// is stored; every layer then reuses the same layout objects, which the GPU backend caches on the device by identity.
    /// </summary>
    public IReadOnlyList<CachePart>? PartsByCache(TokenLayout keys)
    {
        if (_parts.TryGetValue(keys, out var known)) return known;
        var queries = Queries;
        var parts = new List<CachePart>();
        int keyRow = 0, row = 0;
        for (int i = 0; i < Caches.Count; i++)
        {
            int start = row, keyStart = keyRow;
            while (row < queries.Count && queries.SeqIds[row] == i) row++;
            while (keyRow < keys.Count && keys.SeqIds[keyRow] == i) keyRow++;
            if (row > start) parts.Add(new CachePart(i, start, queries.Slice(start, row - start), keys.Slice(keyStart, keyRow - keyStart)));
        }
        return _parts[keys] = row == queries.Count && keyRow == keys.Count ? parts : null;
    }

    /// <summary>The keys sliding-window layers of window <paramref name="window"/> hold during this pass (computed once a step).</summary>
    public WindowedKeys Windowed(int window)
    {
        if (!_windowed.TryGetValue(window, out var w)) _windowed[window] = w = new WindowedKeys(this, window);
        return w;
    }
}

/// <summary>
/// What a sliding-window layer holds during one pass, derived from the step alone, so every rank knows it of every rank.
/// Between passes such a layer holds the rows of its sequence's last W positions (<see cref="SequenceKv.Forget"/>): a
/// sequence that had L tokens before the pass and has L′ after it holds, on each rank, the rows of
/// <see cref="AttentionStep.KeysByRank"/> at positions ≥ L − W (its kept rows, then all its new ones), and drops those
/// below L′ − W afterwards. L is the first new position (the least query position of the sequence), L′ one past its
/// last key.
/// </summary>
public sealed class WindowedKeys
{
    internal WindowedKeys(AttentionStep step, int window)
    {
        _step = step;
        Window = window;
        int sequences = step.Caches.Count;
        foreach (var layout in step.QueriesByRank.Concat(step.KeysByRank))
            if (layout.Count > 0) sequences = Math.Max(sequences, layout.SeqIds.Max() + 1);
        var first = new int[sequences];
        var end = new int[sequences];
        Array.Fill(first, int.MaxValue);
        foreach (var queries in step.QueriesByRank)
            for (int i = 0; i < queries.Count; i++)
                first[queries.SeqIds[i]] = Math.Min(first[queries.SeqIds[i]], queries.Positions[i]);
        foreach (var keys in step.KeysByRank)
            for (int j = 0; j < keys.Count; j++)
                end[keys.SeqIds[j]] = Math.Max(end[keys.SeqIds[j]], keys.Positions[j] + 1);
        KeysByRank = step.KeysByRank.Select(keys =>
        {
            var kept = new TokenLayoutBuilder(keys.Count);
            for (int j = 0; j < keys.Count; j++)
                if (keys.Positions[j] >= (long)first[keys.SeqIds[j]] - window) kept.Append(keys.SeqIds[j], keys.Positions[j]);
            return kept.Build();
        }).ToArray();
        var mine = KeysByRank[step.Rank];
        DropAfter = new int[sequences];
        for (int j = 0; j < mine.Count; j++)
            if (mine.Positions[j] < end[mine.SeqIds[j]] - window) DropAfter[mine.SeqIds[j]]++;
    }

    private readonly AttentionStep _step;
    private HaloPlan? _halo;

    public int Window { get; }
    /// <summary>Which rows each rank sends each other rank for these layers' prefill (<see cref="HaloAttention"/>); computed on first use.</summary>
    internal HaloPlan Halo => _halo ??= new HaloPlan(_step, this);
    /// <summary>Per rank, the rows its sliding-window layers hold while the pass runs, in the order they hold them.</summary>
    public TokenLayout[] KeysByRank { get; }
    /// <summary>Per cache of this rank, how many of its oldest rows no later query sees: dropped once the layer is done.</summary>
    public int[] DropAfter { get; }
}

/// <summary>Query rows [QueryRow, QueryRow + Queries.Count) belong to the sequence whose KV is cache <see cref="Cache"/>, laid out as <see cref="Keys"/>.</summary>
public sealed record CachePart(int Cache, int QueryRow, TokenLayout Queries, TokenLayout Keys);

/// <summary>One layer's attention call on one rank: the step plus the layer, its attention rule, the backend and the ring.</summary>
public sealed record AttentionLayer(IBackend Backend, ICommunicator Comm, AttentionStep Step, int Layer, int Heads, int KvHeads, int HeadDim, AttentionRule Rule)
{
    /// <summary>A layer with the plain rule of its head dimension (scale 1/√d, no window, no cap).</summary>
    public AttentionLayer(IBackend backend, ICommunicator comm, AttentionStep step, int layer, int heads, int kvHeads, int headDim)
        : this(backend, comm, step, layer, heads, kvHeads, headDim, AttentionRule.ForHeadDim(headDim)) { }

    public int? Window => Rule.Window;
    /// <summary>The keys rank <paramref name="rank"/> holds for this layer during the pass: all of them, or a window's.</summary>
    public TokenLayout KeysOf(int rank) => Window is int w ? Step.Windowed(w).KeysByRank[rank] : Step.KeysByRank[rank];
    public TokenLayout Keys => KeysOf(Rank);
    public int Rank => Step.Rank;
    public int Ranks => Step.Ranks;
    public int Next => (Rank + 1) % Ranks;
    public int Previous => (Rank - 1 + Ranks) % Ranks;
}
