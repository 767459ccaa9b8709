namespace LongCtx.Tensors;

/// <summary>
/// Who the rows of an activation or KV tensor are: for each row, the sequence it belongs to (an id
/// unique within one batch) and its global position in that sequence. Attention masks are derived from
/// layouts alone: query i sees key j iff SeqIds[i] == SeqIds[j] and Positions[j] &lt;= Positions[i]. This
/// one rule covers full, causal, causal-with-offset (cached prefix), empty and any sharded block.
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

    /// <summary>True when no query of <paramref name="queries"/> can see any key of <paramref name="keys"/>.</summary>
    public static bool NothingVisible(TokenLayout queries, TokenLayout keys)
    {
        if (queries.Count == 0 || keys.Count == 0) return true;
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
}
