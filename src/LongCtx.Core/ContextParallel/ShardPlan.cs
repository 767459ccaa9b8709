using LongCtx.Tensors;

namespace LongCtx.ContextParallel;

/// <summary>
/// Which new tokens of a prefill batch every rank owns. Load-balanced causal sharding (the paper's
/// §3.2): each sequence's new tokens are cut into 2N chunks that differ by at most one token, and a rank
/// owns a pair of them, chunks p and 2N−1−p, so every rank has one early (cheap) and one late (expensive) chunk and
/// the causal attention work is even. On a fresh sequence rank r owns pair r; on one with cached KV the larger pairs
/// go to the ranks that hold the fewest of its positions (<see cref="PairOwners"/>). A rank's rows are, sequence
/// after sequence, its two chunks in position order. Cached KV stays where it is (<see cref="KvPlacement"/>); only
/// new tokens are sharded.
/// </summary>
public sealed class ShardPlan
{
    private ShardPlan(int ranks, IReadOnlyList<SequenceInput> sequences, RankShard[] shards)
    {
        Ranks = ranks;
        Sequences = sequences;
        Shards = shards;
    }

    public int Ranks { get; }
    public IReadOnlyList<SequenceInput> Sequences { get; }
    public IReadOnlyList<RankShard> Shards { get; }
    public int TotalNewTokens => Sequences.Sum(s => s.NewTokens);

    public static ShardPlan LoadBalanced(IReadOnlyList<SequenceInput> sequences, int ranks)
    {
        if (ranks < 1) throw new ArgumentOutOfRangeException(nameof(ranks), "at least one rank");
        var rows = new List<int>[ranks];       // batch index of each row
        var seqIds = new List<int>[ranks];
        var positions = new List<int>[ranks];
        for (int r = 0; r < ranks; r++) { rows[r] = []; seqIds[r] = []; positions[r] = []; }

        int batchOffset = 0;
        foreach (var seq in sequences)
        {
            if (seq.Cached.Ranks != ranks)
                throw new ArgumentException($"sequence {seq.SeqId}: its KV lives on {seq.Cached.Ranks} ranks, the plan has {ranks}");
            var chunkStart = ChunkStarts(seq.NewTokens, 2 * ranks);
            var owners = PairOwners(seq.Cached, chunkStart);
            for (int pair = 0; pair < ranks; pair++)
                foreach (int c in new[] { pair, 2 * ranks - 1 - pair })
                    for (int i = chunkStart[c]; i < chunkStart[c + 1]; i++)
                    {
                        int r = owners[pair];
                        rows[r].Add(batchOffset + i);
                        seqIds[r].Add(seq.SeqId);
                        positions[r].Add(seq.CachedTokens + i);
                    }
            batchOffset += seq.NewTokens;
        }

        var shards = new RankShard[ranks];
        for (int r = 0; r < ranks; r++)
            shards[r] = new RankShard(r, rows[r].ToArray(), new TokenLayout(seqIds[r].ToArray(), positions[r].ToArray()),
                KvLayout(sequences, r, seqIds[r], positions[r]));
        return new ShardPlan(ranks, sequences, shards);
    }

    /// <summary>
    /// The rank that owns each pair of chunks (p, 2N−1−p): the pairs by size, largest first, to the ranks by the positions
    /// of the sequence they hold, fewest first (ties in order). Without it the first ranks would take the extra tokens
    /// of an uneven split turn after turn, and a turn shorter than 2N would leave the last ranks nothing, so a
    /// conversation's cache would pile up on rank 0. The placement is the same on every rank, so every rank makes the
    /// same plan; a fresh sequence gets pair r on rank r.
    /// </summary>
    private static int[] PairOwners(KvPlacement cached, int[] chunkStart)
    {
        int ranks = cached.Ranks;
        int Size(int pair) => chunkStart[pair + 1] - chunkStart[pair] + chunkStart[2 * ranks - pair] - chunkStart[2 * ranks - 1 - pair];
        var pairs = Enumerable.Range(0, ranks).OrderByDescending(Size).ToArray();
        var byLoad = Enumerable.Range(0, ranks).OrderBy(r => cached.On(r).Length).ToArray();
        var owners = new int[ranks];
        for (int i = 0; i < ranks; i++) owners[pairs[i]] = byLoad[i];
        return owners;
    }

    /// <summary>Starts of n chunks covering [0, length): sizes differ by at most one, larger ones first.</summary>
    public static int[] ChunkStarts(int length, int chunks)
    {
        var starts = new int[chunks + 1];
        int q = length / chunks, extra = length % chunks;
        for (int c = 0; c < chunks; c++) starts[c + 1] = starts[c] + q + (c < extra ? 1 : 0);
        return starts;
    }

    /// <summary>
    /// The layout of the KV a rank holds during this prefill: per sequence, its cached tokens on that rank
    /// followed by its new tokens — the order its <see cref="SequenceKv"/> stores them in.
    /// </summary>
    private static TokenLayout KvLayout(IReadOnlyList<SequenceInput> sequences, int rank, List<int> newSeqIds, List<int> newPositions)
    {
        var layout = new TokenLayoutBuilder();
        var added = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(newPositions);
        int row = 0;
        foreach (var seq in sequences)
        {
            layout.Append(seq.SeqId, seq.Cached.On(rank));
            int start = row;
            while (row < newSeqIds.Count && newSeqIds[row] == seq.SeqId) row++;
            layout.Append(seq.SeqId, added[start..row]);
        }
        return layout.Build();
    }

    /// <summary>Puts rows computed rank by rank back into batch order: result[BatchIndex] = rank row.</summary>
    public float[] Unshard(IReadOnlyList<float[]> rankRows, int rowLength)
    {
        var result = new float[(long)TotalNewTokens * rowLength];
        for (int r = 0; r < Ranks; r++)
        {
            var idx = Shards[r].BatchIndex;
            for (int i = 0; i < idx.Length; i++)
                Array.Copy(rankRows[r], (long)i * rowLength, result, (long)idx[i] * rowLength, rowLength);
        }
        return result;
    }

    /// <summary>The rank and row that hold batch token <paramref name="batchIndex"/>.</summary>
    public (int Rank, int Row) Locate(int batchIndex)
    {
        foreach (var shard in Shards)
        {
            int i = Array.IndexOf(shard.BatchIndex, batchIndex);
            if (i >= 0) return (shard.Rank, i);
        }
        throw new ArgumentOutOfRangeException(nameof(batchIndex));
    }
}

/// <summary>
/// One rank's part of a prefill: its new-token rows (each row's index in the batch, and the layout that
/// gives sequence and global position), and the layout of all the KV it holds while this batch runs.
/// </summary>
public sealed record RankShard(int Rank, int[] BatchIndex, TokenLayout Queries, TokenLayout Keys)
{
    public int Rows => BatchIndex.Length;
}
