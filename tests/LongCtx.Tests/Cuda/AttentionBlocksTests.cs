using LongCtx.Approximate;
using LongCtx.ContextParallel;
using LongCtx.Cuda.Attention;
using LongCtx.Tensors;
using static LongCtx.Tests.Cuda.TestLayouts;

namespace LongCtx.Tests.Cuda;

/// <summary>
/// The decomposition of an attention call into dense (unmasked, bottom-right causal, or windowed) blocks, checked
/// element by element against the layout rule: query i sees key j iff same sequence and pos_k ≤ pos_q (and, with a
/// window W, pos_q − W &lt; pos_k).
/// </summary>
public class AttentionBlocksTests
{
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void RingStepsOfLoadBalancedShardsAreAllDenseBlocks(int ranks)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int trial = 0; trial < 10; trial++)
        {
            var sequences = Enumerable.Range(0, random.Next(1, 3)).Select(id =>
            {
                var cached = new KvPlacement(ranks);
                int prefix = random.Next(2) == 0 ? 0 : random.Next(1, 40);
                for (int p = 0; p < prefix; p++) cached.Append(random.Next(ranks), [p]);
                return new SequenceInput(id, random.Next(2 * ranks, 60), cached);
            }).ToList();
            var plan = ShardPlan.LoadBalanced(sequences, ranks);
            // Pass-KV: rank r's queries against every rank's KV; pass-Q computes the same pairs.
            foreach (var queries in plan.Shards)
                foreach (var keys in plan.Shards)
                {
                    var blocks = AttentionBlocks.Decompose(queries.Queries, keys.Keys);
                    Assert.True(blocks is not null, $"seed {seed}: queries of rank {queries.Rank} against the KV of rank {keys.Rank} were not decomposed");
                    AssertDescribesTheRule(queries.Queries, keys.Keys, blocks, $"seed {seed}, ranks {queries.Rank}/{keys.Rank}");
                }
        }
    }

    [Fact]
    public void RankOwningTwoChunksSplitsIntoOneCausalAndOneUnmaskedBlock()
    {
        // 16 tokens on 2 ranks, chunks of 4: rank 0 owns positions 0-3 and 12-15 and holds their KV.
        var plan = ShardPlan.LoadBalanced([new SequenceInput(0, 16, new KvPlacement(2))], 2);
        var own = AttentionBlocks.Decompose(plan.Shards[0].Queries, plan.Shards[0].Keys)!;
        Assert.Equal([new DenseBlock(0, 4, 0, 4, Causal: true), new DenseBlock(4, 4, 0, 8, Causal: true)], own.Blocks);
        // Against rank 1's KV (positions 4-11): chunk 0-3 sees nothing, chunk 12-15 sees all 8 keys.
        var other = AttentionBlocks.Decompose(plan.Shards[0].Queries, plan.Shards[1].Keys)!;
        Assert.Equal([new DenseBlock(4, 4, 0, 8, Causal: false)], other.Blocks);
        Assert.Equal([(0, 4)], other.EmptyRuns);
    }

    [Fact]
    public void FusedBatchOfSequencesIsOneCausalBlockPerSequence()
    {
        var lengths = new[] { 5, 130, 1, 64 };
        var layout = Concat(lengths.Select((n, s) => Sequence(s, 0, n)));
        var blocks = AttentionBlocks.Decompose(layout, layout)!;
        Assert.Equal(lengths.Length, blocks.Blocks.Count);
        Assert.All(blocks.Blocks, b => Assert.True(b.Causal || b.QueryCount == 1));
        AssertDescribesTheRule(layout, layout, blocks, "fused batch");
    }

    [Fact]
    public void CachedPrefixPrefillIsCausalOverPrefixAndNewTokens()
    {
        var queries = Sequence(0, 100, 37);
        var keys = Sequence(0, 0, 137);
        var blocks = AttentionBlocks.Decompose(queries, keys)!;
        Assert.Equal([new DenseBlock(0, 37, 0, 137, Causal: true)], blocks.Blocks);
        AssertDescribesTheRule(queries, keys, blocks, "cached prefix");
    }

    [Fact]
    public void DecodeRowsAreUnmaskedBlocksOverTheirSequencesCaches()
    {
        // Three sequences decoding one token each against a cache holding 10, 3 and 7 tokens.
        var queries = new TokenLayout([0, 1, 2], [10, 3, 7]);
        var keys = Concat([Sequence(0, 0, 11), Sequence(1, 0, 4), Sequence(2, 0, 8)]);
        var blocks = AttentionBlocks.Decompose(queries, keys)!;
        Assert.Equal([new DenseBlock(0, 1, 0, 11, false), new DenseBlock(1, 1, 11, 4, false), new DenseBlock(2, 1, 15, 8, false)], blocks.Blocks);
        AssertDescribesTheRule(queries, keys, blocks, "decode");
    }

    /// <summary>
    /// A decode row over a long cache whose positions repeat or go back once, anywhere (the check runs a vector of
    /// positions at a time, then one by one): refused; the same cache in order: one unmasked block.
    /// </summary>
    [Fact]
    public void LongCachesOutOfOrderAnywhereAreRefused()
    {
        const int n = 1000;
        var queries = new TokenLayout([0, 1], [n, 5]);
        var inOrder = Enumerable.Range(0, n).ToArray();
        Assert.Equal([new DenseBlock(0, 1, 0, n, false), new DenseBlock(1, 1, n, 6, false)],
            AttentionBlocks.Decompose(queries, Concat([new TokenLayout(new int[n], inOrder), Sequence(1, 0, 6)]))!.Blocks);
        var random = new Random(Random.Shared.Next());
        int[] places = [1, 7, 8, 9, 15, 16, 17, 500, n - 9, n - 8, n - 2, n - 1, .. Enumerable.Range(0, 8).Select(_ => random.Next(1, n))];
        foreach (int at in places)
            foreach (bool repeat in new[] { true, false })
            {
                var positions = (int[])inOrder.Clone();
                positions[at] = repeat ? positions[at - 1] : positions[at - 1] - 1;
                var keys = Concat([new TokenLayout(new int[n], positions), Sequence(1, 0, 6)]);
                Assert.True(AttentionBlocks.Decompose(queries, keys) is null, $"position {at} {(repeat ? "repeats" : "goes back")}: not refused");
            }
    }

    [Fact]
    public void LayoutsThatAreNotDenseBlocksAreRefused()
    {
        var queries = Sequence(0, 0, 10);
        // Keys of one sequence in two row ranges.
        Assert.Null(AttentionBlocks.Decompose(queries, Concat([Sequence(0, 0, 5), Sequence(1, 0, 3), Sequence(0, 5, 5)])));
        // Keys out of position order.
        Assert.Null(AttentionBlocks.Decompose(queries, new TokenLayout(new int[10], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0])));
        // The first queries see nothing, the later ones something.
        Assert.Null(AttentionBlocks.Decompose(queries, Sequence(0, 5, 10)));
        // Every other position held: the visible prefix grows by a half key per query.
        Assert.Null(AttentionBlocks.Decompose(queries, new TokenLayout(new int[10], Enumerable.Range(0, 10).Select(i => 2 * i).ToArray())));
    }

    [Fact]
    public void WheneverRandomLayoutsDecomposeTheBlocksDescribeTheRule() => ForRandomDecomposableLayouts(AssertDescribesTheRule);

    [Fact]
    public void WhenRandomLayoutsDecomposeWithAWindowTheBlocksDescribeTheRule() => ForRandomDecomposableLayouts(AssertDescribesTheRule, windowed: true);

    [Fact]
    public void AWindowedPrefillIsOneBandOverItsKeys()
    {
        var layout = Sequence(0, 0, 1000);
        var blocks = AttentionBlocks.Decompose(layout, layout, 64)!;
        Assert.Equal([new DenseBlock(0, 1000, 0, 1000, Causal: true, Window: 64)], blocks.Blocks);
        AssertDescribesTheRule(layout, layout, blocks, 64, "one sequence");
    }

    /// <summary>
    /// A sliding-window layer's calls on N ranks: each rank's queries against its own window keys, and against the halo
    /// rows of every other rank, after a first turn and after a partial prefill whose cached window rows lie on random ranks;
    /// those that decompose describe the rule (the others go to the kernel).
    /// </summary>
    [Theory]
    [InlineData(2, 64)]
    [InlineData(3, 16)]
    [InlineData(4, 100)]
    public void WindowedLayersCallsAreDenseBlocksOrTheKernels(int ranks, int window)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        int decomposed = 0, calls = 0;
        for (int trial = 0; trial < 10; trial++)
        {
            var cached = new KvPlacement(ranks);
            int prefix = random.Next(3) == 0 ? 0 : random.Next(1, 300);
            for (int p = 0; p < prefix; p++) cached.Append(random.Next(ranks), [p]);
            int tokens = random.Next(2) == 0 ? random.Next(2 * ranks, 400) : 2 * ranks * window + random.Next(0, 300);
            var plan = ShardPlan.LoadBalanced([new SequenceInput(0, tokens, cached)], ranks);
            var step = new AttentionStep
            {
                Rank = 0, QueriesByRank = plan.Shards.Select(s => s.Queries).ToArray(), KeysByRank = plan.Shards.Select(s => s.Keys).ToArray(),
                Caches = [], Appends = [],
            };
            var windowed = step.Windowed(window);
            foreach (var queries in plan.Shards)
                foreach (var keys in plan.Shards)
                {
                    // The rank's own keys, or (another rank's) the rows its queries see, as the halo exchange sends them.
                    var layout = keys.Rank == queries.Rank ? windowed.KeysByRank[keys.Rank] : Visible(windowed.KeysByRank[keys.Rank], queries.Queries, window);
                    calls++;
                    if (AttentionBlocks.Decompose(queries.Queries, layout, window) is not { } blocks) continue;
                    decomposed++;
                    AssertDescribesTheRule(queries.Queries, layout, blocks, window, $"seed {seed}, trial {trial}, ranks {queries.Rank}/{keys.Rank}");
                }
            // A first turn whose chunks are at least a window long is all dense blocks: every run's window lies in
            // consecutive positions. (Shorter chunks put a rank's two chunks in one window, across the gap between them.)
            if (prefix == 0 && tokens >= 2 * ranks * window) Assert.Equal(calls, decomposed);
            (calls, decomposed) = (0, 0);
        }
    }

    private static TokenLayout Visible(TokenLayout keys, TokenLayout queries, int window)
    {
        var rule = new LongCtx.Backends.AttentionRule(1, window);
        var kept = Enumerable.Range(0, keys.Count).Where(j => Enumerable.Range(0, queries.Count)
            .Any(i => queries.SeqIds[i] == keys.SeqIds[j] && rule.Sees(queries.Positions[i], keys.Positions[j]))).ToArray();
        return new TokenLayout(kept.Select(j => keys.SeqIds[j]).ToArray(), kept.Select(j => keys.Positions[j]).ToArray());
    }

    [Fact]
    public void WindowedRowSlicesSeeExactlyWhatTheWholeBlockSees()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int trial = 0; trial < 200; trial++)
        {
            int queries = random.Next(1, 60), keys = queries + random.Next(0, 30), maxRows = random.Next(1, 70), window = random.Next(1, 40);
            bool causal = random.Next(4) != 0;
            int? diagonal = causal ? null : keys - 1 + random.Next(0, 5);
            var block = new DenseBlock(random.Next(5), queries, random.Next(5), keys, causal, window, diagonal);
            // As the decomposition makes them: every row sees a key.
            if (Enumerable.Range(0, queries).Any(i => block.VisibleKeys(i).Start >= block.VisibleKeys(i).End)) continue;
            var slices = CudnnAttention.Slices(block, maxRows).ToList();
            string where = $"seed {seed}, {block}, at most {maxRows} rows";
            Assert.True(slices.Count == (queries + maxRows - 1) / maxRows, $"{where}: {slices.Count} slices");
            for (int i = block.QueryStart; i < block.QueryStart + queries; i++)
            {
                var owner = Assert.Single(slices, s => i >= s.QueryStart && i < s.QueryStart + s.QueryCount);
                for (int j = 0; j < block.KeyStart + keys + 2; j++)
                    Assert.True(Sees(block, i, j) == Sees(owner, i, j), $"{where}: query {i}, key {j}, slice {owner}");
            }
        }
    }

    [Fact]
    public void StarAndApbCallsAreDenseBlocksWhenNoRankPadsItsPassingRows()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        int passingCalls = 0;
        for (int trial = 0; trial < 100; trial++)
        {
            int ranks = random.Next(2, 6), document = random.Next(ranks * 4, 200), query = random.Next(1, 6);
            int blockLength = document / ranks;
            var blocks = new ContextBlocks(ranks, document, query, anchorTokens: random.Next(0, blockLength + 1),
                passingTokens: random.Next(1, blockLength + 2), embedQuery: true);
            string where = $"seed {seed}, {ranks} ranks, document {document}, query {query}, anchor {blocks.AnchorTokens}, passing {blocks.PassingTokens}";
            for (int r = 0; r < ranks; r++)
            {
                var rows = blocks.ContextLayout(r);
                AssertDescribesTheRule(rows, rows, AttentionBlocks.Decompose(rows, rows), $"{where}: rank {r} local");
                bool padded = Enumerable.Range(0, r).Any(s => blocks.Passed(s) < blocks.PassedRows);
                if (r == 0 || padded) continue;
                var passing = blocks.PassingLayout(r);
                AssertDescribesTheRule(rows, passing, AttentionBlocks.Decompose(rows, passing), $"{where}: rank {r} passing");
                passingCalls++;
            }
        }
        Assert.True(passingCalls > 50, $"seed {seed}: only {passingCalls} passing calls without padding");
    }

    [Fact]
    public void CausalRowSlicesSeeExactlyWhatTheWholeBlockSees()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int trial = 0; trial < 200; trial++)
        {
            int queries = random.Next(1, 60), keys = queries + random.Next(0, 30), maxRows = random.Next(1, 70);
            var block = new DenseBlock(random.Next(5), queries, random.Next(5), keys, Causal: random.Next(4) != 0);
            var slices = CudnnAttention.Slices(block, maxRows).ToList();
            string where = $"seed {seed}, {block}, at most {maxRows} rows";
            Assert.True(slices.Count == (block.Causal ? (queries + maxRows - 1) / maxRows : 1), $"{where}: {slices.Count} slices");
            Assert.All(slices, s => Assert.True(s.QueryCount <= (block.Causal ? maxRows : queries) && s.KeyCount >= s.QueryCount || !s.Causal, $"{where}: {s}"));
            for (int i = block.QueryStart; i < block.QueryStart + queries; i++)
            {
                var owner = Assert.Single(slices, s => i >= s.QueryStart && i < s.QueryStart + s.QueryCount);
                for (int j = 0; j < block.KeyStart + keys + 2; j++)
                    Assert.True(Sees(block, i, j) == Sees(owner, i, j), $"{where}: query {i}, key {j}");
            }
        }
    }

    [Fact]
    public void TheDecompositionIsCachedPerLayoutPair()
    {
        var a = Sequence(0, 0, 300);
        var b = Sequence(0, 0, 300);
        Assert.Same(AttentionBlocks.Of(a, a), AttentionBlocks.Of(a, a));
        Assert.NotSame(AttentionBlocks.Of(a, a), AttentionBlocks.Of(a, b));
    }

    private static void AssertDescribesTheRule(TokenLayout queries, TokenLayout keys, AttentionBlocks? blocks, string where) =>
        AssertDescribesTheRule(queries, keys, blocks, null, where);

    private static void AssertDescribesTheRule(TokenLayout queries, TokenLayout keys, AttentionBlocks? blocks, int? window, string where)
    {
        var mask = new LongCtx.Backends.AttentionRule(1, window);
        Assert.NotNull(blocks);
        var owner = new int[queries.Count];
        Array.Fill(owner, -2);
        for (int b = 0; b < blocks.Blocks.Count; b++)
        {
            var block = blocks.Blocks[b];
            // Bottom-right causal blocks have a key a query; a window's blocks at least one.
            Assert.True(block.KeyCount >= (block.Causal && block.Diagonal is null ? block.QueryCount : 1), $"{where}: {block} has too few keys");
            for (int i = block.QueryStart; i < block.QueryStart + block.QueryCount; i++)
            {
                Assert.True(owner[i] == -2, $"{where}: query row {i} is in two blocks");
                owner[i] = b;
            }
        }
        foreach (var (start, count) in blocks.EmptyRuns)
            for (int i = start; i < start + count; i++)
            {
                Assert.True(owner[i] == -2, $"{where}: query row {i} is in two blocks");
                owner[i] = -1;
            }
        for (int i = 0; i < queries.Count; i++)
        {
            Assert.True(owner[i] != -2, $"{where}: query row {i} is in no block");
            for (int j = 0; j < keys.Count; j++)
            {
                bool rule = queries.SeqIds[i] == keys.SeqIds[j] && mask.Sees(queries.Positions[i], keys.Positions[j]);
                bool described = owner[i] >= 0 && Sees(blocks.Blocks[owner[i]], i, j);
                Assert.True(rule == described, $"{where}: query {i} (seq {queries.SeqIds[i]} pos {queries.Positions[i]}), key {j} (seq {keys.SeqIds[j]} pos {keys.Positions[j]}): rule {rule}, blocks {described}");
            }
        }
    }

    private static bool Sees(DenseBlock b, int i, int j)
    {
        if (i < b.QueryStart || i >= b.QueryStart + b.QueryCount) return false;
        var (start, end) = b.VisibleKeys(i - b.QueryStart);
        return j >= b.KeyStart + start && j < b.KeyStart + end;
    }
}
