using LongCtx.ContextParallel;

namespace LongCtx.Tests.ContextParallel;

public class ShardPlanTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(8)]
    [InlineData(16)]
    public void EveryNewTokenIsOwnedOnceWithItsGlobalPosition(int ranks)
    {
        var random = new Random();
        int seed = random.Next();
        random = new Random(seed);
        for (int trial = 0; trial < 20; trial++)
        {
            var seqs = Enumerable.Range(0, random.Next(1, 4)).Select(i =>
            {
                var placement = new KvPlacement(ranks);
                int cached = random.Next(0, 3) == 0 ? 0 : random.Next(0, 50);
                for (int p = 0; p < cached; p++) placement.Append(random.Next(ranks), [p]);
                return new SequenceInput(i, random.Next(1, 4 * ranks + 7), placement);
            }).ToList();
            var plan = ShardPlan.LoadBalanced(seqs, ranks);

            var seen = plan.Shards.SelectMany(s => s.BatchIndex).OrderBy(i => i).ToArray();
            Assert.Equal(Enumerable.Range(0, plan.TotalNewTokens).ToArray(), seen);
            int offset = 0;
            foreach (var seq in seqs)
            {
                for (int i = 0; i < seq.NewTokens; i++)
                {
                    var (rank, row) = plan.Locate(offset + i);
                    Assert.Equal(seq.SeqId, plan.Shards[rank].Queries.SeqIds[row]);
                    Assert.Equal(seq.CachedTokens + i, plan.Shards[rank].Queries.Positions[row]);
                }
                offset += seq.NewTokens;
            }
            // The KV a rank holds: its cached positions, then its new rows, sequence by sequence.
            foreach (var shard in plan.Shards)
                Assert.Equal(seqs.Sum(s => s.Cached.On(shard.Rank).Length) + shard.Rows, shard.Keys.Count);
        }
    }

    [Fact]
    public void RankOwnsChunkRAndChunkTwoNMinusOneMinusR()
    {
        // 16 tokens on 4 ranks: 8 chunks of 2; rank 0 owns chunks 0 and 7, rank 3 owns chunks 3 and 4.
        var plan = ShardPlan.LoadBalanced([new SequenceInput(0, 16, new KvPlacement(4))], 4);
        Assert.Equal([0, 1, 14, 15], plan.Shards[0].Queries.Positions);
        Assert.Equal([6, 7, 8, 9], plan.Shards[3].Queries.Positions);
    }

    [Fact]
    public void CausalWorkIsBalanced()
    {
        // Keys visible to a rank's queries: with load balancing every rank does the same work (to one chunk).
        const int ranks = 4, length = 4096;
        var plan = ShardPlan.LoadBalanced([new SequenceInput(0, length, new KvPlacement(ranks))], ranks);
        var work = plan.Shards.Select(s => s.Queries.Positions.Sum(p => (long)p + 1)).ToArray();
        Assert.True(work.Max() - work.Min() <= (long)length / (2 * ranks) * 2, string.Join(", ", work));
    }

    [Theory]
    [InlineData(0, 4)]
    [InlineData(3, 8)]
    [InlineData(17, 6)]
    [InlineData(100, 7)]
    public void ChunksDifferByAtMostOneToken(int length, int chunks)
    {
        var starts = ShardPlan.ChunkStarts(length, chunks);
        var sizes = starts.Zip(starts.Skip(1), (a, b) => b - a).ToArray();
        Assert.Equal(length, sizes.Sum());
        Assert.True(sizes.Max() - sizes.Min() <= 1);
    }

    [Fact]
    public void UnshardRestoresBatchOrder()
    {
        var plan = ShardPlan.LoadBalanced([new SequenceInput(0, 11, new KvPlacement(3)), new SequenceInput(1, 5, new KvPlacement(3))], 3);
        var rows = plan.Shards.Select(s => s.BatchIndex.Select(i => (float)i).ToArray()).ToList();
        Assert.Equal(Enumerable.Range(0, 16).Select(i => (float)i).ToArray(), plan.Unshard(rows, 1));
    }
}
