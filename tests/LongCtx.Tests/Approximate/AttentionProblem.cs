using LongCtx.Approximate;
using LongCtx.Backends.Cpu;
using LongCtx.Comm;
using LongCtx.ContextParallel;
using LongCtx.Tensors;

namespace LongCtx.Tests.Approximate;

/// <summary>
/// Random q, k, v (after RoPE) for every position of a document followed by a query: runs an approximate strategy's
/// context phase on every rank, and computes in double what each rank's document rows must then hold.
/// </summary>
internal sealed class AttentionProblem
{
    public required int Ranks, Heads, KvHeads, HeadDim, Length, Query;
    public required float[] Q, K, V;

    public int Document => Length - Query;

    /// <param name="shape">heads, KV heads and head dim; null: random.</param>
    public static AttentionProblem Random(Random r, int ranks, (int Heads, int KvHeads, int HeadDim)? shape = null)
    {
        int kvHeads = r.Next(1, 4);
        var (heads, kv, d) = shape ?? (kvHeads * r.Next(1, 5), kvHeads, new[] { 8, 16 }[r.Next(2)]);
        int query = r.Next(1, 6), length = query + ranks + r.Next(0, 20 * ranks + 30);
        float[] Fill(int n) => Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray();
        return new AttentionProblem
        {
            Ranks = ranks, Heads = heads, KvHeads = kv, HeadDim = d, Length = length, Query = query,
            Q = Fill(length * heads * d), K = Fill(length * kv * d), V = Fill(length * kv * d),
        };
    }

    public override string ToString() => $"N={Ranks} H={Heads} KVH={KvHeads} D={HeadDim} T={Length} K={Query}";

    /// <summary>Rows of a rank's context phase that belong to the document: its anchor copy, then its block.</summary>
    public static int[] DocumentRows(ContextBlocks blocks, int rank) =>
        blocks.ContextLayout(rank).Positions[..(blocks.AnchorCopy(rank) + blocks.BlockLength(rank))];

    /// <summary>
    /// The strategy run on every rank (one CPU backend each, and disposed there if it is disposable); each rank's
    /// output on its document rows.
    /// </summary>
    public float[][] Run(ContextBlocks blocks, Func<CpuBackend, IAttentionStrategy> strategy) => new InProcessGroup(Ranks).Run(comm =>
    {
        using var b = new CpuBackend(1);
        int r = comm.Rank;
        var rows = blocks.ContextLayout(r);
        using var cache = new SequenceKv(b, 1, KvHeads, HeadDim);
        var step = new AttentionStep
        {
            Rank = r,
            QueriesByRank = Enumerable.Range(0, Ranks).Select(blocks.ContextLayout).ToArray(),
            KeysByRank = Enumerable.Range(0, Ranks).Select(x => blocks.ContextLayout(x).Slice(blocks.AnchorCopy(x), blocks.BlockLength(x))).ToArray(),
            Caches = [cache],
            Appends = [new KvAppend(0, blocks.AnchorCopy(r), blocks.BlockLength(r))],
        };
        using var q = Upload(b, Rows(Q, rows.Positions, Heads), rows.Count, Heads);
        using var k = Upload(b, Rows(K, rows.Positions, KvHeads), rows.Count, KvHeads);
        using var v = Upload(b, Rows(V, rows.Positions, KvHeads), rows.Count, KvHeads);
        var attention = strategy(b);
        var host = new float[rows.Count * Heads * HeadDim];
        try
        {
            using var o = attention.Attend(new AttentionLayer(b, comm, step, 0, Heads, KvHeads, HeadDim), q, k, v);
            b.Download<float>(o, host);
        }
        finally
        {
            (attention as IDisposable)?.Dispose();
        }
        Assert.Equal(blocks.BlockLength(r), cache.Count);
        return host[..(DocumentRows(blocks, r).Length * Heads * HeadDim)];
    });

    /// <summary>
    /// What rank <paramref name="rank"/>'s document rows must hold, in double: each row attends causally to the rank's
    /// own rows (anchor copy and block), and a block row also to every entry the earlier ranks passed it —
    /// <paramref name="passed"/>[s][g], the positions rank s passes for KV head g (none for Star).
    /// </summary>
    public float[] Expected(ContextBlocks blocks, int rank, IReadOnlyList<int[][]> passed)
    {
        var rows = DocumentRows(blocks, rank);
        int group = Heads / KvHeads;
        var output = new float[rows.Length * Heads * HeadDim];
        for (int i = 0; i < rows.Length; i++)
            for (int h = 0; h < Heads; h++)
            {
                var keys = rows.Where(p => p <= rows[i]);
                if (i >= blocks.AnchorCopy(rank)) keys = keys.Concat(Enumerable.Range(0, rank).SelectMany(s => passed[s][h / group]));
                Attend(rows[i], h, keys.ToArray(), output.AsSpan((i * Heads + h) * HeadDim, HeadDim));
            }
        return output;
    }

    /// <summary>Dense causal attention at the positions of rank <paramref name="rank"/>'s document rows, in double.</summary>
    public float[] Dense(ContextBlocks blocks, int rank)
    {
        var rows = DocumentRows(blocks, rank);
        var output = new float[rows.Length * Heads * HeadDim];
        for (int i = 0; i < rows.Length; i++)
            for (int h = 0; h < Heads; h++)
                Attend(rows[i], h, Enumerable.Range(0, rows[i] + 1).ToArray(), output.AsSpan((i * Heads + h) * HeadDim, HeadDim));
        return output;
    }

    private void Attend(int query, int head, int[] keys, Span<float> output)
    {
        int g = head / (Heads / KvHeads);
        var scores = keys.Select(j => Dot(Q, (query * Heads + head) * HeadDim, K, (j * KvHeads + g) * HeadDim) / Math.Sqrt(HeadDim)).ToArray();
        double max = scores.Max(), sum = scores.Sum(s => Math.Exp(s - max));
        for (int x = 0; x < HeadDim; x++)
            output[x] = (float)(keys.Select((j, n) => Math.Exp(scores[n] - max) * V[(j * KvHeads + g) * HeadDim + x]).Sum() / sum);
    }

    /// <summary>The positions of the entries rank <paramref name="rank"/> may pass on (its block, less the anchor on rank 0).</summary>
    public static int[] Candidates(ContextBlocks blocks, int rank) =>
        Enumerable.Range(blocks.BlockStart(rank) + blocks.CandidateStart(rank), blocks.Candidates(rank)).ToArray();

    /// <summary>
    /// The query-attention score of rank <paramref name="rank"/>'s candidates, [candidate, KV head], the obvious way in
    /// double: the attention the query's rows pay each candidate, softmax over the candidates, summed over the query's
    /// rows and the query heads of the KV head's group.
    /// </summary>
    public double[] QueryAttentionScores(ContextBlocks blocks, int rank)
    {
        var candidates = Candidates(blocks, rank);
        var mass = new double[candidates.Length * KvHeads];
        int group = Heads / KvHeads;
        for (int i = Document; i < Length; i++)
            for (int h = 0; h < Heads; h++)
            {
                int g = h / group;
                var s = candidates.Select(j => Dot(Q, (i * Heads + h) * HeadDim, K, (j * KvHeads + g) * HeadDim) / Math.Sqrt(HeadDim)).ToArray();
                double max = s.Max(), sum = s.Sum(x => Math.Exp(x - max));
                for (int c = 0; c < candidates.Length; c++) mass[c * KvHeads + g] += Math.Exp(s[c] - max) / sum;
            }
        return mass;
    }

    /// <summary>
    /// What each rank passes on, [rank][KV head] → positions: nothing from the last rank (it has no successor), all its
    /// candidates from a rank with no more than l_p, else the l_p best by <paramref name="scores"/> (of rank s's
    /// candidates, [candidate, KV head]); null when a choice is too close to call (<see cref="Top"/>).
    /// </summary>
    public int[][][]? Passed(ContextBlocks blocks, Func<int, IReadOnlyList<double>> scores)
    {
        var passed = new int[Ranks][][];
        for (int s = 0; s < Ranks; s++)
        {
            var candidates = Candidates(blocks, s);
            int count = blocks.Passed(s);
            if (s == Ranks - 1 || count == 0) passed[s] = Enumerable.Repeat(Array.Empty<int>(), KvHeads).ToArray();
            else if (count == candidates.Length) passed[s] = Enumerable.Repeat(candidates, KvHeads).ToArray();
            else if (Top(candidates, scores(s), count) is { } top) passed[s] = top;
            else return null;
        }
        return passed;
    }

    /// <summary>
    /// Per KV head, the positions of the <paramref name="count"/> best-scoring candidates, ascending; null when the
    /// last one kept and the first one dropped score too close for float32 to order them surely.
    /// </summary>
    public int[][]? Top(int[] candidates, IReadOnlyList<double> scores, int count)
    {
        var chosen = new int[KvHeads][];
        for (int g = 0; g < KvHeads; g++)
        {
            var order = Enumerable.Range(0, candidates.Length).OrderByDescending(c => scores[c * KvHeads + g]).ToArray();
            if (count < order.Length)
            {
                double kept = scores[order[count - 1] * KvHeads + g], dropped = scores[order[count] * KvHeads + g];
                if (kept - dropped < 1e-4 * Math.Abs(kept)) return null;
            }
            chosen[g] = order.Take(count).Select(c => candidates[c]).Order().ToArray();
        }
        return chosen;
    }

    /// <summary>A rank's candidates as the strategy sees them: their q, k, v rows and layout.</summary>
    public (Tensor Q, Tensor K, Tensor V, TokenLayout Layout) Upload(CpuBackend b, int[] positions) =>
        (Upload(b, Rows(Q, positions, Heads), positions.Length, Heads), Upload(b, Rows(K, positions, KvHeads), positions.Length, KvHeads),
            Upload(b, Rows(V, positions, KvHeads), positions.Length, KvHeads), new TokenLayout(new int[positions.Length], positions));

    private double Dot(float[] a, int i, float[] b, int j)
    {
        double s = 0;
        for (int x = 0; x < HeadDim; x++) s += (double)a[i + x] * b[j + x];
        return s;
    }

    private float[] Rows(float[] source, int[] positions, int heads) =>
        positions.SelectMany(p => source.AsSpan(p * heads * HeadDim, heads * HeadDim).ToArray()).ToArray();

    private Tensor Upload(CpuBackend b, float[] values, int rows, int heads) => b.Upload<float>(values, rows, heads, HeadDim);
}
