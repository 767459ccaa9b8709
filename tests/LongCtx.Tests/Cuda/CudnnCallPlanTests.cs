using LongCtx.Cuda;

namespace LongCtx.Tests.Cuda;

/// <summary>The cuDNN call plan's text form (LONGCTX_CUDNN_CALLS, bench-attention --cudnn-calls) and its head groups.</summary>
public class CudnnCallPlanTests
{
    [Fact]
    public void ParsesAnySubsetAndKeepsTheDefaultsForTheRest()
    {
        Assert.Equal(CudnnCallPlan.Default with { KvHeadsPerCall = 1 }, CudnnCallPlan.Parse("kv-heads=1", "test"));
        Assert.Equal(new CudnnCallPlan(8192, 2, 3), CudnnCallPlan.Parse(" rows=8192, kv-heads=2 ,engine=3", "test"));
        var random = new Random();
        var plan = new CudnnCallPlan(random.Next(0, 1 << 20), random.Next(0, 64), random.Next(0, 8));
        Assert.Equal(plan, CudnnCallPlan.Parse(plan.ToString(), "test"));
    }

    [Theory]
    [InlineData("rows=-1", "'rows=-1'")]
    [InlineData("rows", "'rows'")]
    [InlineData("heads=2", "'heads' is unknown")]
    [InlineData("rows=8k", "'rows=8k'")]
    public void RejectsBadTextNamingTheItem(string text, string named)
    {
        var e = Assert.Throws<LongCtxException>(() => CudnnCallPlan.Parse(text, "LONGCTX_CUDNN_CALLS"));
        Assert.Contains("LONGCTX_CUDNN_CALLS", e.Message);
        Assert.Contains(named, e.Message);
    }

    [Theory]
    [InlineData(0, 8, 8)]
    [InlineData(1, 8, 1)]
    [InlineData(2, 8, 2)]
    [InlineData(3, 8, 8)] // does not divide: one call over all heads
    [InlineData(8, 8, 8)]
    [InlineData(16, 8, 8)]
    public void AGroupThatDoesNotDivideTheKvHeadsFallsBackToAllOfThem(int perCall, int kvHeads, int expected) =>
        Assert.Equal(expected, new CudnnCallPlan(0, perCall, 0).KvHeadsFor(kvHeads));
}
