using LongCtx.Tensors;

namespace LongCtx.ContextParallel;

/// <summary>
/// The halo of one pass's sliding-window layers: for every pair of ranks, which rows of the sender's window keys
/// (<see cref="WindowedKeys.KeysByRank"/>) some query of the receiver can see — a key at p is seen by a query at q of
/// its sequence iff p ≤ q &lt; p + W. Every rank computes the same plan from the step, so sizes and layouts need no
/// message. For a prefill's load-balanced chunks that is, per chunk, the last W − 1 positions before it, held by the
/// owners of the chunks before it: O(W) rows a chunk boundary, however long the prompt.
/// </summary>
internal sealed class HaloPlan
{
    private readonly List<(int Start, int Count)>[,] _runs;
    private readonly TokenLayout[,] _layouts;

    public HaloPlan(AttentionStep step, WindowedKeys windowed)
    {
        int n = step.Ranks, window = windowed.Window;
        _runs = new List<(int, int)>[n, n];
        _layouts = new TokenLayout[n, n];
        for (int dst = 0; dst < n; dst++)
        {
            var seen = QueryPositions(step.QueriesByRank[dst]);
            for (int src = 0; src < n; src++)
            {
                var keys = windowed.KeysByRank[src];
                var runs = new List<(int, int)>();
                var layout = new TokenLayoutBuilder();
                if (src != dst)
                    for (int j = 0; j < keys.Count; j++)
                    {
                        if (!Seen(seen, keys.SeqIds[j], keys.Positions[j], window)) continue;
                        if (runs.Count > 0 && runs[^1].Item1 + runs[^1].Item2 == j) runs[^1] = (runs[^1].Item1, runs[^1].Item2 + 1);
                        else runs.Add((j, 1));
                        layout.Append(keys.SeqIds[j], keys.Positions[j]);
                    }
                _runs[src, dst] = runs;
                _layouts[src, dst] = layout.Build();
            }
        }
    }

    /// <summary>The rows of <paramref name="src"/>'s window keys that <paramref name="dst"/>'s queries see, as runs of consecutive rows.</summary>
    public IReadOnlyList<(int Start, int Count)> Runs(int src, int dst) => _runs[src, dst];

    /// <summary>The layout of those rows, in the sender's order (as the receiver holds them).</summary>
    public TokenLayout Layout(int src, int dst) => _layouts[src, dst];

    public int Rows(int src, int dst) => _layouts[src, dst].Count;

    /// <summary>Whether any rank sends anything to the rank <paramref name="distance"/> after it.</summary>
    public bool Moves(int distance)
    {
        int n = _layouts.GetLength(0);
        for (int r = 0; r < n; r++)
            if (Rows(r, (r + distance) % n) > 0) return true;
        return false;
    }

    // Per sequence, the sorted positions of a rank's queries.
    private static Dictionary<int, int[]> QueryPositions(TokenLayout queries)
    {
        var lists = new Dictionary<int, List<int>>();
        for (int i = 0; i < queries.Count; i++)
        {
            if (!lists.TryGetValue(queries.SeqIds[i], out var list)) lists[queries.SeqIds[i]] = list = [];
            list.Add(queries.Positions[i]);
        }
        return lists.ToDictionary(kv => kv.Key, kv => kv.Value.Order().ToArray());
    }

    // A query of the sequence at q with p ≤ q < p + window.
    private static bool Seen(Dictionary<int, int[]> queries, int seq, int p, int window)
    {
        if (!queries.TryGetValue(seq, out var positions)) return false;
        int at = Array.BinarySearch(positions, p);
        if (at < 0) at = ~at;
        return at < positions.Length && positions[at] - p < window;
    }
}
