using LongCtx.Backends.Cpu;
using LongCtx.ContextParallel;
using LongCtx.Engine;
using LongCtx.Model;
using LongCtx.Tensors;
using LongCtx.Tests.ContextParallel;
using LongCtx.Tests.Engine;

namespace LongCtx.Tests.Quantization;

/// <summary>
/// The FP8 KV cache on the CPU: it holds one byte an element (a quarter of float32), the pass-KV / pass-Q choice counts
/// one byte an element, the fixture notices a cache left unquantised, the approximate strategies refuse it, and
/// sliding-window layers keep codes over the ranks.
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
        Assert.Equal(DType.F8E4M3, engine.KvCacheType);
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
        var e = Assert.Throws<SettingException>(() => engine.Prefill([(engine.NewSequence(), Kv.Reference.InputIds)], strategy));
        Assert.Equal(Setting.KvCacheDtype, e.Setting);
        Assert.Contains($"{strategy} keeps a KV cache of the activation type", e.Message);
    }

    /// <summary>
    /// Tiny Qwen2 with sliding windows (two full layers, two of W = 192) and an FP8 cache (scale 1): the windowed layers keep
    /// their last W positions as codes, a quarter of float32's bytes, and the halo exchange moves codes as the ring does, so
    /// three ranks with either ring give one rank's logits (float32 runs differ by ~1e-6 here) and greedy tokens.
    /// </summary>
    [Theory]
    [InlineData(StrategyNames.PassKv)]
    [InlineData(StrategyNames.PassQ)]
    public void WindowedLayersKeepCodesOverTheRanks(string strategy)
    {
        var r = ReferenceModel.Named("tiny-qwen2-swa");
        (float[] Logits, List<int> Greedy, long HeldBytes) Run(int ranks, string how, KvCacheDType kv)
        {
            using var weights = ModelWeights.Load(r.Directory, r.Config, kv);
            using var engine = new InferenceEngine(r.Config, new CpuRankGroup(r.Config, weights, ranks));
            var sequence = engine.NewSequence();
            var logits = engine.Prefill([(sequence, r.InputIds)], how, keepLast: 4).Logits[0];
            long held = engine.KvRowBytesPerRank().Sum();
            var greedy = r.GreedyContinuation(engine, sequence, logits.AsSpan(3 * r.Config.VocabSize).ToArray());
            return (logits, greedy, held);
        }
        var one = Run(1, StrategyNames.Dense, KvCacheDType.Fp8);
        var three = Run(3, strategy, KvCacheDType.Fp8);
        double error = DenseReference.RelativeError(three.Logits, one.Logits);
        Assert.True(error < 1e-4, $"3 ranks {strategy} against 1 rank with an FP8 cache: logits relative error {error:e2}");
        Assert.Equal(one.Greedy, three.Greedy);
        Assert.Equal(Run(3, strategy, KvCacheDType.Activation).HeldBytes, 4 * three.HeldBytes);
    }
}
