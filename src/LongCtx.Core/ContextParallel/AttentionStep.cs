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
/// but tensors travels between ranks.
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

    private IReadOnlyList<CachePart>? _parts;
    private bool _partsKnown;

    /// <summary>
    /// This rank's queries and keys cut per cache — cache i holds sequence i's KV, rows of
    /// <see cref="Keys"/> in cache order — for attention that reads each cache where it is. Null when a
    /// sequence's query rows are not contiguous. Asked once the pass's new KV is stored; every layer then
    /// reuses the same layout objects, which the GPU backend caches on the device by identity.
    /// </summary>
    public IReadOnlyList<CachePart>? PartsByCache()
    {
        if (_partsKnown) return _parts;
        _partsKnown = true;
        var queries = Queries;
        var parts = new List<CachePart>();
        int keyRow = 0, row = 0;
        for (int i = 0; i < Caches.Count; i++)
        {
            int start = row;
            while (row < queries.Count && queries.SeqIds[row] == i) row++;
            int keys = Caches[i].Count;
            if (row > start) parts.Add(new CachePart(i, start, queries.Slice(start, row - start), Keys.Slice(keyRow, keys)));
            keyRow += keys;
        }
        return _parts = row == queries.Count && keyRow == Keys.Count ? parts : null;
    }
}

/// <summary>Query rows [QueryRow, QueryRow + Queries.Count) belong to the sequence whose KV is cache <see cref="Cache"/>, laid out as <see cref="Keys"/>.</summary>
public sealed record CachePart(int Cache, int QueryRow, TokenLayout Queries, TokenLayout Keys);

/// <summary>One layer's attention call on one rank: the step plus the layer, the backend and the ring.</summary>
public sealed record AttentionLayer(IBackend Backend, ICommunicator Comm, AttentionStep Step, int Layer, int Heads, int KvHeads, int HeadDim)
{
    public float Scale => 1f / MathF.Sqrt(HeadDim);
    public int Rank => Step.Rank;
    public int Ranks => Step.Ranks;
    public int Next => (Rank + 1) % Ranks;
    public int Previous => (Rank - 1 + Ranks) % Ranks;
}
