using LongCtx.Cuda.Attention;

namespace LongCtx.Tests.Cuda;

/// <summary>The cuDNN call plan's text form (LONGCTX_CUDNN_CALLS, bench-attention --cudnn-calls) and its row slices.</summary>
public class CudnnCallPlanTests
{
    [Fact]
    public void ParsesAnySubsetAndKeepsTheDefaultsForTheRest()
    {
        Assert.Equal(CudnnCallPlan.Default with { EngineConfig = 1 }, CudnnCallPlan.Parse("engine=1"));
        Assert.Equal(new CudnnCallPlan(8192, 3), CudnnCallPlan.Parse(" rows=8192, engine=3 "));
        Assert.Equal(CudnnCallPlan.AutoRows, CudnnCallPlan.Parse("rows=8192,rows=auto").MaxCausalRows);
        var random = new Random();
        var plan = new CudnnCallPlan(random.Next(-1, 1 << 20), random.Next(0, 8));
        Assert.Equal(plan, CudnnCallPlan.Parse(plan.ToString()));
    }

    [Theory]
    [InlineData("rows=-1", "'rows=-1'")]
    [InlineData("rows", "'rows'")]
    [InlineData("heads=2", "'heads' is unknown")]
    [InlineData("rows=8k", "'rows=8k'")]
    [InlineData("engine=auto", "only rows may be auto")]
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
}
