using System.Numerics;
using System.Runtime.CompilerServices;
using LongCtx.Tensors;

namespace LongCtx.Cuda.Attention;

/// <summary>
/// Query rows [QueryStart, QueryStart + QueryCount) attending to key rows [KeyStart, KeyStart + KeyCount) (i and j counted
/// from those starts): every key (unmasked), or up to a diagonal — query i sees key j iff j ≤ i + Shift (Causal) and
/// j > i + Shift − Window (Window > 0: a sliding-window band). Shift is KeyCount − QueryCount (bottom-right aligned:
/// the last query sees the last key) unless <see cref="Diagonal"/> says otherwise (a band over keys that all precede
/// the queries).
/// </summary>
internal readonly record struct DenseBlock(int QueryStart, int QueryCount, int KeyStart, int KeyCount, bool Causal, int Window = 0, int? Diagonal = null)
{
    public int Shift => Diagonal ?? KeyCount - QueryCount;

    /// <summary>The keys [Start, End) (counted from KeyStart) query i of the block sees.</summary>
    public (int Start, int End) VisibleKeys(int i) =>
        (Window > 0 ? Math.Max(0, i + Shift - Window + 1) : 0, Causal ? Math.Min(KeyCount, i + Shift + 1) : KeyCount);
}

/// <summary>
/// One attention call (queries and keys given by layouts, key j visible to query i iff same sequence and
/// pos_k ≤ pos_q, and with a window W also pos_q − W &lt; pos_k) rewritten as dense blocks a fused SDPA kernel
/// computes directly, plus query rows that see nothing (output 0, LSE −inf). Each query row is in exactly one block or empty range, so the
/// blocks write their rows of the output and LSE and nothing needs merging.
///
/// The queries split into runs: maximal row ranges of one sequence with consecutive positions p0..p0+m−1.
/// A run is a block when its sequence's keys are one row range with strictly increasing positions; then
/// query p0+i sees a prefix of that range of length v(i), and v grows by 0 or 1 per query. So v(m−1) = 0
/// is an empty run, v(0) = v(m−1) an unmasked block over v(0) keys, and v(0) ≥ 1 with v(m−1) − v(0) = m−1
/// a causal block over v(m−1) keys. Any other run (keys scattered, partly empty rows) makes the whole
/// call ineligible: <see cref="Of"/> returns null and the caller uses the general masked kernel.
/// With a window, a run's visible keys are the range from the first key its first query sees to the last key its last
/// query sees; where the mask cuts into that range (on either side) the range's positions must be consecutive, so
/// that positions and rows differ by one constant and the band in positions is a band in rows.
/// </summary>
internal sealed class AttentionBlocks
{
    private static readonly ConditionalWeakTable<TokenLayout, ConditionalWeakTable<TokenLayout, Entry>> Cache = new();

    private AttentionBlocks(DenseBlock[] blocks, (int Start, int Count)[] emptyRuns)
    {
        Blocks = blocks;
        EmptyRuns = emptyRuns;
    }

    public IReadOnlyList<DenseBlock> Blocks { get; }
    public IReadOnlyList<(int Start, int Count)> EmptyRuns { get; }

    /// <summary>The decomposition, computed once per (queries, keys, window): every layer reuses the same layout objects.</summary>
    public static AttentionBlocks? Of(TokenLayout queries, TokenLayout keys, int? window = null)
    {
        var entry = Cache.GetValue(queries, _ => new()).GetValue(keys, _ => new Entry());
        lock (entry)
        {
            if (!entry.ByWindow.TryGetValue(window ?? 0, out var blocks)) entry.ByWindow[window ?? 0] = blocks = Decompose(queries, keys, window);
            return blocks;
        }
    }

    public static AttentionBlocks? Decompose(TokenLayout queries, TokenLayout keys, int? window = null)
    {
        var keyRanges = KeyRanges(keys);
        var blocks = new List<DenseBlock>();
        var empty = new List<(int, int)>();
        for (int start = 0; start < queries.Count;)
        {
            int seq = queries.SeqIds[start], p0 = queries.Positions[start], m = 1;
            while (start + m < queries.Count && queries.SeqIds[start + m] == seq && queries.Positions[start + m] == p0 + m) m++;
            if (!keyRanges.TryGetValue(seq, out var range)) empty.Add((start, m));
            else if (range.Count < 0) return null; // this sequence's keys are scattered or out of order
            else if (window is int w)
            {
                if (!WindowedRun(keys.Positions, range, start, m, p0, w, blocks, empty)) return null;
            }
            else
            {
                int first = Visible(keys.Positions, range.Start, range.Count, p0);
                int last = Visible(keys.Positions, range.Start, range.Count, p0 + m - 1);
                if (last == 0) empty.Add((start, m));
                else if (first == last) blocks.Add(new DenseBlock(start, m, range.Start, first, Causal: false));
                else if (first >= 1 && last - first == m - 1) blocks.Add(new DenseBlock(start, m, range.Start, last, Causal: true));
                else return null;
            }
            start += m;
        }
        return new AttentionBlocks(blocks.ToArray(), empty.ToArray());
    }

    /// <summary>
    /// Per sequence, its key rows as one range; Count −1 when they are not contiguous with increasing positions.
    /// Vectorised: a decode step's keys are a whole cache, scanned anew every step.
    /// </summary>
    private static Dictionary<int, (int Start, int Count)> KeyRanges(TokenLayout keys)
    {
        var ranges = new Dictionary<int, (int Start, int Count)>();
        for (int j = 0; j < keys.Count;)
        {
            int seq = keys.SeqIds[j], start = j;
            int run = keys.SeqIds.AsSpan(start).IndexOfAnyExcept(seq);
            j = run < 0 ? keys.Count : start + run;
            bool increasing = StrictlyIncreasing(keys.Positions.AsSpan(start, j - start));
            ranges[seq] = ranges.ContainsKey(seq) || !increasing ? (start, -1) : (start, j - start);
        }
        return ranges;
    }

    private static bool StrictlyIncreasing(ReadOnlySpan<int> values)
    {
        int width = Vector<int>.Count, i = 1;
        for (; i + width <= values.Length; i += width)
            if (!Vector.GreaterThanAll(new Vector<int>(values.Slice(i, width)), new Vector<int>(values.Slice(i - 1, width)))) return false;
        for (; i < values.Length; i++)
            if (values[i] <= values[i - 1]) return false;
        return true;
    }

    /// <summary>
    /// A run of m queries at p0.. against its sequence's key range under a window, as blocks and empty runs: the rows
    /// that see keys and those that see none come in stretches (a halo's keys are seen by a chunk's first W − 1 queries
    /// only), each a block or an empty run. False when a stretch's mask cuts into keys whose positions are not consecutive.
    /// </summary>
    private static bool WindowedRun(int[] positions, (int Start, int Count) range, int start, int m, int p0, int window,
        List<DenseBlock> blocks, List<(int, int)> empty)
    {
        // Query p sees the keys [lo, hi) of the range: those ≤ p and not ≤ p − W. Both ends only grow with p.
        int lo = Visible(positions, range.Start, range.Count, p0 - window), hi = Visible(positions, range.Start, range.Count, p0);
        int first = 0, loFirst = lo, hiFirst = hi, loPrevious = lo, hiPrevious = hi;
        for (int i = 1; i <= m; i++)
        {
            if (i < m)
            {
                while (hi < range.Count && positions[range.Start + hi] <= p0 + i) hi++;
                while (lo < range.Count && positions[range.Start + lo] <= p0 + i - window) lo++;
                if ((hi > lo) == (hiPrevious > loPrevious))
                {
                    (loPrevious, hiPrevious) = (lo, hi);
                    continue;
                }
            }
            // Rows [first, i) all see keys, or all see none.
            int n = i - first;
            if (hiPrevious == loPrevious) empty.Add((start + first, n));
            else if (Stretch(positions, range.Start, start + first, n, p0 + first, window, loFirst, hiFirst, loPrevious, hiPrevious) is { } block) blocks.Add(block);
            else return false;
            (first, loFirst, hiFirst, loPrevious, hiPrevious) = (i, lo, hi, lo, hi);
        }
        return true;
    }

    /// <summary>
    /// Rows that all see keys: their first sees [loFirst, hiFirst) of the range, their last [loLast, hiLast). A block over
    /// [loFirst, hiLast): unmasked where every row sees all of it, else the mask's bounds as a diagonal, which needs the
    /// block's positions consecutive (so that rows and positions differ by one constant); null when they are not.
    /// </summary>
    private static DenseBlock? Stretch(int[] positions, int rangeStart, int queryStart, int m, int p0, int window, int loFirst, int hiFirst, int loLast, int hiLast)
    {
        int keyStart = rangeStart + loFirst, keyCount = hiLast - loFirst;
        bool causal = hiFirst < hiLast, banded = loLast > loFirst;
        if (!causal && !banded) return new DenseBlock(queryStart, m, keyStart, keyCount, Causal: false);
        if (positions[keyStart + keyCount - 1] - positions[keyStart] != keyCount - 1) return null;
        int shift = p0 - positions[keyStart];
        return new DenseBlock(queryStart, m, keyStart, keyCount, causal, banded ? window : 0, shift == keyCount - m ? null : shift);
    }

    /// <summary>How many of the increasing positions[start..start+count) are ≤ position.</summary>
    private static int Visible(int[] positions, int start, int count, int position)
    {
        int lo = 0, hi = count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (positions[start + mid] <= position) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }

    /// <summary>A (queries, keys) pair's decompositions by window (0: none).</summary>
    private sealed class Entry
    {
        public readonly Dictionary<int, AttentionBlocks?> ByWindow = [];
    }
}
