using LongCtx.Tensors;

namespace LongCtx.Backends.Cpu;

internal enum TileVisibility { None, Partial, Full }

/// <summary>
/// A run of consecutive rows of a layout with what the mask needs to judge it whole: its single sequence id
/// (or -1 when it mixes sequences) and its position range.
/// </summary>
internal readonly record struct TileSpan(int Start, int Count, int SeqId, int MinPos, int MaxPos)
{
    public static TileSpan[] Of(TokenLayout layout, int tile)
    {
        var spans = new TileSpan[(layout.Count + tile - 1) / tile];
        for (int i = 0; i < spans.Length; i++)
        {
            int start = i * tile, count = Math.Min(tile, layout.Count - start);
            int seq = layout.SeqIds[start], min = int.MaxValue, max = int.MinValue;
            for (int j = start; j < start + count; j++)
            {
                if (layout.SeqIds[j] != seq) seq = -1;
                min = Math.Min(min, layout.Positions[j]);
                max = Math.Max(max, layout.Positions[j]);
            }
            spans[i] = new TileSpan(start, count, seq, min, max);
        }
        return spans;
    }

    /// <summary>
    /// Whether the queries of q see none, some or all keys of k (query sees key: same sequence, key position ≤ query
    /// position, and fewer than <paramref name="window"/> positions before it).
    /// </summary>
    public static TileVisibility Visibility(TileSpan q, TileSpan k, int window = int.MaxValue)
    {
        // Positions are non-negative, so no difference below overflows.
        bool hidden = k.MinPos > q.MaxPos || q.MinPos - k.MaxPos >= window;
        if (q.SeqId >= 0 && k.SeqId >= 0)
        {
            if (q.SeqId != k.SeqId || hidden) return TileVisibility.None;
            return k.MaxPos <= q.MinPos && q.MaxPos - k.MinPos < window ? TileVisibility.Full : TileVisibility.Partial;
        }
        return hidden ? TileVisibility.None : TileVisibility.Partial;
    }
}
