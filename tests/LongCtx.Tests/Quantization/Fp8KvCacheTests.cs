using LongCtx.ContextParallel;
using LongCtx.Model;
namespace LongCtx.Tests.Quantization;

/// <summary>
/// The FP8 KV cache on the CPU: it holds one byte an element (a quarter of float32), the pass-KV / pass-Q choice counts
/// one byte an element, the fixture notices a cache left unquantised, and the approximate strategies refuse it.
/// </summary>
public class Fp8KvCacheTests
{
    private static readonly Fp8Fixture Kv = new("tiny-llama-fp8-ct-kv");

    [Fact]
    public void HoldsOneByteAnElement()
    {
        long[] Bytes(KvCacheDType dtype)
        {
            var (engine, weights) = Kv.Open(4, kv: dtype);
            using var _ = weights;
            using var __ = engine;
            engine.Prefill([(engine.NewSequence(), Kv.Reference.InputIds)], StrategyNames.PassKv);
            return engine.KvBytesPerRank();
        }
        var fp8 = Bytes(KvCacheDType.Auto);
        var f32 = Bytes(KvCacheDType.Activation);
        Assert.All(fp8, b => Assert.True(b > 0));
        Assert.Equal(f32.Select(b => b / 4), fp8);
    }

    [Fact]
    public void TheChoiceCountsOneByteAnElement()
    {
        var (engine, weights) = Kv.Open(2);
        using var _ = weights;
        using var __ = engine;
        Assert.True(engine.KvCacheIsFp8);
        var result = engine.Prefill([(engine.NewSequence(), Kv.Reference.InputIds)], StrategyNames.Auto);
        Assert.Equal(1, result.Choice!.BytesPerElement);
    }

    [Fact]
    public void TheFixtureNoticesAnUnquantisedCache()
    {
        // The reference quantises K and V; the same model with a float32 cache must differ visibly from it.
        var (engine, weights) = Kv.Open(1, kv: KvCacheDType.Activation);
        using var _ = weights;
        using var __ = engine;
        var r = Kv.Reference;
        var sequence = engine.NewSequence();
        var logits = engine.Prefill([(sequence, r.InputIds)], StrategyNames.Dense, keepLast: r.InputIds.Length).Logits[0];
        double error = Fp8ModelTests.MaxRelative(logits, Kv.LogitsAll);
        var greedy = r.GreedyContinuation(engine, sequence, logits.AsSpan((r.InputIds.Length - 1) * r.Config.VocabSize).ToArray());
        Assert.True(error > 3e-3 || !greedy.SequenceEqual(r.Greedy16), $"a float32 cache is within {error:e2} of the FP8 reference and greedy agrees");
    }

    [Theory]
    [InlineData(StrategyNames.Star)]
    [InlineData(StrategyNames.Apb)]
    public void ApproximateStrategiesRefuseIt(string strategy)
    {
        var (engine, weights) = Kv.Open(2);
        using var _ = weights;
        using var __ = engine;
        var e = Assert.Throws<LongCtxException>(() => engine.Prefill([(engine.NewSequence(), Kv.Reference.InputIds)], strategy));
        Assert.Contains("--kv-cache-dtype", e.Message);
    }
}
