using LongCtx.Tensors;

namespace LongCtx.Parallel.Compression;

/// <summary>
/// Keeps the top-scoring <c>count</c> entries of each KV head: K and V rows gathered per head into
/// [count, NKV, D] (RoPE was applied before, so each kept key still carries its original position), and,
/// per head, the positions kept, in position order.
/// </summary>
public static class KvCompression
{
    public static int[][] Compress(AttentionLayer layer, Tensor scores, Tensor k, Tensor v, TokenLayout candidates, int count, Tensor keptK, Tensor keptV)
    {
        var b = layer.Backend;
        int n = candidates.Count, heads = layer.KvHeads;
        // Selection happens on the host: the scores are one float per entry and head, small beside the KV.
        var host = new float[n * heads];
        b.Download<float>(scores, host);
        var rows = new int[heads][];
        var indices = new int[count * heads];
        for (int h = 0; h < heads; h++)
        {
            rows[h] = TopRows(host, n, heads, h, count);
            for (int i = 0; i < count; i++) indices[i * heads + h] = rows[h][i];
        }
        using var idx = b.Upload<int>(indices, count, heads);
        b.GatherRows(k, idx, keptK);
        b.GatherRows(v, idx, keptV);
        return rows.Select(r => r.Select(i => candidates.Positions[i]).ToArray()).ToArray();
    }

    /// <summary>The rows of the <paramref name="count"/> highest scores of head h, ascending; ties go to the earlier row.</summary>
    private static int[] TopRows(float[] scores, int n, int heads, int h, int count)
    {
        var order = Enumerable.Range(0, n).ToArray();
        Array.Sort(order, (x, y) =>
        {
            int c = scores[y * heads + h].CompareTo(scores[x * heads + h]);
            return c != 0 ? c : x.CompareTo(y);
        });
        var top = order[..count];
        Array.Sort(top);
        return top;
    }
}
