using LongCtx.Cuda;

namespace LongCtx.Tests.Cuda;

/// <summary>The cuDNN call plan's text form (LONGCTX_CUDNN_CALLS, bench-attention --cudnn-calls), its row slices and its diagonal split.</summary>
public class CudnnCallPlanTests
{
    [Fact]
    public void ParsesAnySubsetAndKeepsTheDefaultsForTheRest()
    {
        Assert.Equal(CudnnCallPlan.Default with { SplitDiagonal = true }, CudnnCallPlan.Parse("diagonal=1", "test"));
        Assert.Equal(new CudnnCallPlan(8192, 3, true), CudnnCallPlan.Parse(" rows=8192, engine=3 ,diagonal=1", "test"));
        Assert.Equal(CudnnCallPlan.AutoRows, CudnnCallPlan.Parse("rows=8192,rows=auto", "test").MaxCausalRows);
        var random = new Random();
        var plan = new CudnnCallPlan(random.Next(-1, 1 << 20), random.Next(0, 8), random.Next(2) == 1);
        Assert.Equal(plan, CudnnCallPlan.Parse(plan.ToString(), "test"));
    }

    [Theory]
    [InlineData("rows=-1", "'rows=-1'")]
    [InlineData("rows", "'rows'")]
    [InlineData("heads=2", "'heads' is unknown")]
    [InlineData("rows=8k", "'rows=8k'")]
    [InlineData("engine=auto", "only rows may be auto")]
    [InlineData("diagonal=2", "diagonal must be 0 or 1")]
    [InlineData("kv-heads=1", "'kv-heads' is unknown")]
    public void RejectsBadTextNamingTheItem(string text, string named)
    {
        var e = Assert.Throws<LongCtxException>(() => CudnnCallPlan.Parse(text, "LONGCTX_CUDNN_CALLS"));
        Assert.Contains("LONGCTX_CUDNN_CALLS", e.Message);
        Assert.Contains(named, e.Message);
    }


    [Theory]
    [InlineData(CudnnCallPlan.AutoRows, 4096, 16384)]
    [InlineData(CudnnCallPlan.AutoRows, 32768, 16384)]
    [InlineData(CudnnCallPlan.AutoRows, 32769, 8192)]
    [InlineData(CudnnCallPlan.AutoRows, 131072, 8192)]
    [InlineData(0, 131072, 0)]
    [InlineData(4096, 131072, 4096)]
    public void AutoRowsSliceLongBlocksFiner(int rows, int queryRows, int expected) =>
        Assert.Equal(expected, new CudnnCallPlan(rows, 0).RowsFor(queryRows));

    [Fact]
    public void TheDiagonalSplitCoversEachRowsKeysOnce()
    {
        var random = new Random();
        for (int trial = 0; trial < 200; trial++)
        {
            int queries = random.Next(1, 300), before = random.Next(0, 300), queryStart = random.Next(0, 50), keyStart = random.Next(0, 50);
            var block = new DenseBlock(queryStart, queries, keyStart, before + queries, Causal: true);
            var parts = CudnnAttention.SplitDiagonal(block).ToList();
            Assert.Equal(before > 0 ? 2 : 1, parts.Count);
            Assert.False(parts[0].Merge);
            for (int i = 0; i < queries; i++)
            {
                // Row i of the block sees keys keyStart .. keyStart + before + i: exactly once over the parts.
                var seen = new List<int>();
                foreach (var (p, _) in parts)
                {
                    Assert.Equal(block.QueryStart, p.QueryStart);
                    Assert.Equal(queries, p.QueryCount);
                    int visible = p.Causal ? p.KeyCount - p.QueryCount + i + 1 : p.KeyCount;
                    seen.AddRange(Enumerable.Range(p.KeyStart, visible));
                }
                Assert.Equal(Enumerable.Range(keyStart, before + i + 1), seen);
            }
        }
        var unmasked = new DenseBlock(0, 10, 0, 30, Causal: false);
        Assert.Equal([(unmasked, false)], CudnnAttention.SplitDiagonal(unmasked));
    }
}
