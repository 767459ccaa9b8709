namespace LongCtx.Tensors;

/// <summary>
/// Who the rows of an activation or KV tensor are: for each row, the sequence it belongs to (an id
/// unique within one batch) and its global position in that sequence. Attention masks are derived from
/// layouts alone: query i sees key j iff SeqIds[i] == SeqIds[j] and Positions[j] &lt;= Positions[i] (and, on a
/// sliding-window layer of window W, Positions[i] − W &lt; Positions[j]). This one rule covers full, causal,
/// causal-with-offset (cached prefix), windowed, empty and any sharded block.
/// </summary>
public sealed class TokenLayout
{
    public TokenLayout(int[] seqIds, int[] positions)
    {
        if (seqIds.Length != positions.Length)
            throw new ArgumentException("seqIds and positions must have the same length");
        SeqIds = seqIds;
        Positions = positions;
    }

    public static readonly TokenLayout Empty = new([], []);

    public int[] SeqIds { get; }
    public int[] Positions { get; }
    public int Count => SeqIds.Length;

    public TokenLayout Slice(int start, int count) => new(SeqIds.AsSpan(start, count).ToArray(), Positions.AsSpan(start, count).ToArray());

    public static TokenLayout Concat(IReadOnlyList<TokenLayout> parts)
    {
        int n = 0;
        foreach (var p in parts) n += p.Count;
        var s = new int[n];
        var pos = new int[n];
        int o = 0;
        foreach (var p in parts)
        {
            p.SeqIds.CopyTo(s, o);
            p.Positions.CopyTo(pos, o);
            o += p.Count;
        }
        return new TokenLayout(s, pos);
    }

    /// <summary>True when no query of <paramref name="queries"/> can see any key of <paramref name="keys"/>, with a window of <paramref name="window"/> positions where given.</summary>
    public static bool NothingVisible(TokenLayout queries, TokenLayout keys, int? window = null)
    {
        if (queries.Count == 0 || keys.Count == 0) return true;
        if (window is int w) return !AnyWithinWindow(queries, keys, w);
        // Per sequence: the latest query position against the earliest key position.
        var maxQ = new Dictionary<int, int>();
        for (int i = 0; i < queries.Count; i++)
        {
            int s = queries.SeqIds[i], p = queries.Positions[i];
            if (!maxQ.TryGetValue(s, out var m) || p > m) maxQ[s] = p;
        }
        for (int j = 0; j < keys.Count; j++)
            if (maxQ.TryGetValue(keys.SeqIds[j], out var m) && keys.Positions[j] <= m) return false;
        return true;
    }

    // Some key at p with a query of its sequence in [p, p + w): per sequence, the sorted query positions answer each
    // key with one binary search.
    private static bool AnyWithinWindow(TokenLayout queries, TokenLayout keys, int w)
    {
        var bySequence = new Dictionary<int, List<int>>();
        for (int i = 0; i < queries.Count; i++)
        {
            if (!bySequence.TryGetValue(queries.SeqIds[i], out var list)) bySequence[queries.SeqIds[i]] = list = [];
            list.Add(queries.Positions[i]);
        }
        foreach (var list in bySequence.Values) list.Sort();
        for (int j = 0; j < keys.Count; j++)
        {
            if (!bySequence.TryGetValue(keys.SeqIds[j], out var list)) continue;
            int p = keys.Positions[j], at = list.BinarySearch(p);
            if (at < 0) at = ~at;
            if (at < list.Count && list[at] - p < w) return true;
        }
        return false;
    }
}
