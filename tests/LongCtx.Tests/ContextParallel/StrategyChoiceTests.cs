using LongCtx.ContextParallel;

namespace LongCtx.Tests.ContextParallel;

/// <summary>
/// The pass-KV / pass-Q heuristic on Llama 3 shapes, with the paper's setting: bf16 (e = 2), H100-class
/// attention rate and a 400 Gb/s RDMA link per GPU.
/// </summary>
public class StrategyChoiceTests
{
    private static readonly HardwareRates H100Rdma = new(AttentionFlopsPerSecond: 400e12, LinkBytesPerSecond: 50e9);

    [Theory]
    [InlineData(32, 8)]  // Llama 3 8B
    [InlineData(64, 8)]  // Llama 3 70B
    public void FullPrefillPicksPassKv(int heads, int kvHeads)
    {
        foreach (var t in new[] { 32_768, 131_072, 1_048_576 })
            foreach (var n in new[] { 2, 4, 8, 16 })
                Assert.Equal("pass-kv", StrategyChoice.Decide(t, 0, n, heads, kvHeads, 2, H100Rdma).Strategy);
    }

    [Theory]
    [InlineData(32, 8)]
    [InlineData(64, 8)]
    public void HighCacheHitRatePicksPassQ(int heads, int kvHeads)
    {
        // A short follow-up turn against a long cached context: 1% miss rate.
        var choice = StrategyChoice.Decide(1_280, 126_720, 4, heads, kvHeads, 2, H100Rdma);
        Assert.Equal("pass-q", choice.Strategy);
        Assert.True(choice.NewTokens < choice.HideThresholdTokens);
    }

    [Theory]
    [InlineData(32, 8, 0.50)]   // 8B: 2·NKV/NH = 50%
    [InlineData(64, 8, 0.25)]   // 70B: 25%
    [InlineData(128, 8, 0.125)] // 405B: 12.5%, the paper's figure
    public void MissRateThresholdIsTwoNkvOverNhLessTheOverlapTerm(int heads, int kvHeads, double gqaThreshold)
    {
        const int n = 4;
        const long t = 1000;
        double correction = 4.0 * t * H100Rdma.LinkBytesPerSecond / (n * H100Rdma.AttentionFlopsPerSecond * 2);
        double threshold = gqaThreshold - correction;
        long Cached(double missRate) => (long)(t / missRate) - t;

        var above = StrategyChoice.Decide(t, Cached(threshold * 1.05), n, heads, kvHeads, 2, H100Rdma);
        var below = StrategyChoice.Decide(t, Cached(threshold * 0.95), n, heads, kvHeads, 2, H100Rdma);
        Assert.Equal(threshold, above.MissRateThreshold, 1e-12);
        Assert.Equal("pass-kv", above.Strategy);
        Assert.Equal("pass-q", below.Strategy);
    }

    [Fact]
    public void PassKvHidesBehindComputeAboveTheTokenThreshold()
    {
        // T ≥ N·C·NKV·e / (2·NH·BW): 4·400e12·8·2 / (2·32·50e9) = 8000 tokens for the 8B shape on 4 ranks.
        var atThreshold = StrategyChoice.Decide(8000, 1_000_000_000, 4, 32, 8, 2, H100Rdma);
        var below = StrategyChoice.Decide(7999, 1_000_000_000, 4, 32, 8, 2, H100Rdma);
        Assert.Equal(8000, atThreshold.HideThresholdTokens, 1e-9);
        Assert.Equal("pass-kv", atThreshold.Strategy);
        Assert.Equal("pass-q", below.Strategy);
    }
}
