using LongCtx.Approximate;
using LongCtx.Backends.Cpu;
using LongCtx.ContextParallel;
using LongCtx.Engine;
using LongCtx.Model;
using LongCtx.Sampling;
using LongCtx.Tests.ContextParallel;
using LongCtx.Tests.Engine;

namespace LongCtx.Tests.Families;

/// <summary>
/// The families through the rest of the engine, against their reference fixtures: a prompt prefilled in turns on the
/// cache with decode steps between (the windows' rows then lie on every rank), chunked prefill, tensor parallelism
/// (two KV heads: two tensor ranks), and Star and APB (exact where their approximation vanishes). And the KV a long
/// prompt leaves: on Gemma 3, global layers × T + local layers × W rows, on one rank and on four.
/// </summary>
public class FamilyEngineTests
{
    public static TheoryData<string, int, string> TurnCases()
    {
        var data = new TheoryData<string, int, string>();
        foreach (var model in ReferenceModel.FamilyNames)
        {
            data.Add(model, 1, StrategyNames.Dense);
            data.Add(model, 3, StrategyNames.PassKv);
            data.Add(model, 4, StrategyNames.PassQ);
            data.Add(model, 5, StrategyNames.Auto);
        }
        return data;
    }

    /// <summary>
    /// The prompt in three parts: a first prefill, a few of its tokens as decode steps (each stored on rank position mod
    /// N), and the rest as a partial prefill against that cache; every position's argmax, the last logits and the
    /// greedy continuation as one prefill gives them.
    /// </summary>
    [Theory]
    [MemberData(nameof(TurnCases))]
    public void PromptInTurnsWithDecodeStepsBetweenMatchesTheReference(string model, int ranks, string strategy)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var reference = ReferenceModel.Named(model);
        var ids = reference.InputIds;
        int first = random.Next(300, 1400), steps = random.Next(1, 2 * ranks + 3);
        string what = $"seed {seed}: {model} N={ranks} {strategy}, {first} tokens, {steps} decode steps, then {ids.Length - first - steps}";
        var (engine, weights) = reference.Open(ranks);
        using var _ = weights;
        using var __ = engine;
        var sequence = engine.NewSequence();
        var argmax = new List<int>(engine.Prefill([(sequence, ids[..first])], strategy, argmaxAll: true).ArgmaxAll![0]);
        for (int i = first; i < first + steps; i++) argmax.Add(Sampler.ArgMax(engine.Decode([(sequence, ids[i])])[0]));
        var rest = engine.Prefill([(sequence, ids[(first + steps)..])], strategy, keepLast: 4, argmaxAll: true);
        argmax.AddRange(rest.ArgmaxAll![0]);

        var wrong = reference.ArgmaxMismatches([.. argmax], ids.Length);
        Assert.True(wrong.Length == 0, $"{what}: argmax differs at positions {string.Join(", ", wrong.Take(10))} ({wrong.Length} in all)");
        double error = DenseReference.RelativeError(rest.Logits[0], reference.LogitsLast4);
        Assert.True(error < 1e-3, $"{what}: logits relative error {error:e2}");
        Assert.Equal(reference.Greedy16, reference.GreedyContinuation(engine, sequence, rest.Logits[0].AsSpan(3 * reference.Config.VocabSize).ToArray()));
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void ChunkedPrefillMatchesTheReference(string model)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        int ranks = random.Next(1, 5), chunk = random.Next(40, 400);
        string strategy = ranks == 1 ? StrategyNames.Dense : random.Next(2) == 0 ? StrategyNames.PassKv : StrategyNames.PassQ;
        var reference = ReferenceModel.Named(model);
        using var weights = ModelWeights.Load(reference.Directory, reference.Config);
        using var engine = new InferenceEngine(reference.Config, new CpuRankGroup(reference.Config, weights, ranks)) { PrefillChunkTokens = chunk };
        var sequence = engine.NewSequence();
        var prefill = engine.Prefill([(sequence, reference.InputIds)], strategy, keepLast: 4, argmaxAll: true);
        string what = $"seed {seed}: {model} N={ranks} {strategy}, chunks of {chunk}";
        double error = DenseReference.RelativeError(prefill.Logits[0], reference.LogitsLast4);
        Assert.True(error < 1e-3, $"{what}: logits relative error {error:e2}");
        Assert.Empty(reference.ArgmaxMismatches(prefill.ArgmaxAll![0], reference.InputIds.Length));
        Assert.Equal(reference.Greedy16, reference.GreedyContinuation(engine, sequence, prefill.Logits[0].AsSpan(3 * reference.Config.VocabSize).ToArray()));
    }

    public static TheoryData<string> Families() => new(ReferenceModel.FamilyNames);

    public static TheoryData<string, int, string> TensorParallelCases()
    {
        var data = new TheoryData<string, int, string>();
        foreach (var model in ReferenceModel.FamilyNames)
        {
            data.Add(model, 1, StrategyNames.Dense);
            data.Add(model, 2, StrategyNames.PassKv);
            data.Add(model, 3, StrategyNames.PassQ);
        }
        return data;
    }

    /// <summary>Each layer split over two tensor ranks (one KV head each), under one to three context ranks.</summary>
    [Theory]
    [MemberData(nameof(TensorParallelCases))]
    public void TensorParallelMatchesTheReference(string model, int ranks, string strategy)
    {
        var reference = ReferenceModel.Named(model);
        var (engine, weights) = reference.Open(ranks, tensorRanks: 2);
        using var _ = weights;
        using var __ = engine;
        var sequence = engine.NewSequence();
        var prefill = engine.Prefill([(sequence, reference.InputIds)], strategy, keepLast: 4, argmaxAll: true);
        string what = $"{model} N={ranks} TP=2 {strategy}";
        double error = DenseReference.RelativeError(prefill.Logits[0], reference.LogitsLast4);
        Assert.True(error < 1e-3, $"{what}: logits relative error {error:e2}");
        Assert.Empty(reference.ArgmaxMismatches(prefill.ArgmaxAll![0], reference.InputIds.Length));
        Assert.Equal(reference.Greedy16, reference.GreedyContinuation(engine, sequence, prefill.Logits[0].AsSpan(3 * reference.Config.VocabSize).ToArray()));
    }

    /// <summary>
    /// APB passing whole blocks is exact attention, sliding windows included (the passed rows keep their positions); Star
    /// runs on four ranks and decodes on what it kept (an approximation: no claim on its tokens).
    /// </summary>
    [Theory]
    [MemberData(nameof(Families))]
    public void ApproximateStrategiesRunOnTheFamilies(string model)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var reference = ReferenceModel.Named(model);
        int ranks = random.Next(2, 5), query = random.Next(4, 24);
        var dense = Prefill(reference, 1, StrategyNames.Dense, null).Logits[0];
        var options = new ApproximateOptions(query, AnchorTokens: random.Next(0, 200), PassingTokens: reference.InputIds.Length);
        var apb = Prefill(reference, ranks, StrategyNames.Apb, options).Logits[0];
        double error = DenseReference.RelativeError(apb, dense);
        Assert.True(error < 1e-4, $"seed {seed} {model} N={ranks} {options}: APB relative error {error:e2}");

        var (engine, weights) = reference.Open(4);
        using var _ = weights;
        using var __ = engine;
        var sequence = engine.NewSequence();
        var star = engine.Prefill([(sequence, reference.InputIds)], StrategyNames.Star, keepLast: 1, approximate: new ApproximateOptions(query));
        Assert.All(star.Logits[0], x => Assert.True(float.IsFinite(x)));
        var next = engine.Decode([(sequence, Sampler.ArgMax(star.Logits[0]))])[0];
        Assert.All(next, x => Assert.True(float.IsFinite(x)));
    }

    /// <summary>After the 2083-token prompt the Gemma 3 fixture's cache holds T rows in its global layer and W in each local one, summed over the ranks.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void Gemma3CacheHoldsGlobalLayersTimesTPlusLocalLayersTimesW(int ranks)
    {
        var reference = ReferenceModel.Named("tiny-gemma3");
        var c = reference.Config;
        var (engine, weights) = reference.Open(ranks);
        using var _ = weights;
        using var __ = engine;
        var sequence = engine.NewSequence();
        engine.Prefill([(sequence, reference.InputIds)], ranks == 1 ? StrategyNames.Dense : StrategyNames.PassKv);
        int t = reference.InputIds.Length, w = c.SlidingWindow!.Value, local = c.SlidingLayerCount, global = c.NumLayers - local;
        long rowBytes = 2L * c.NumKvHeads * c.HeadDim * sizeof(float); // K and V in the CPU's float32
        Assert.Equal((6, 1, 128, 2851), (local, global, w, global * t + local * w)); // the fixture's facts.json: kv_rows_after_prompt
        Assert.Equal((global * (long)t + local * w) * rowBytes, engine.KvRowBytesPerRank().Sum());
        // The buffers behind them: the global layer's T rows and an eighth, each local layer's rows and room for an eighth more.
        Assert.True(engine.KvBytesPerRank().Sum() <= (global * (t + t / 8 + 64L * ranks) + local * (w + 64L * ranks)) * rowBytes,
            $"{engine.KvBytesPerRank().Sum()} bytes of buffers");

        // Decode steps add a row to the global layer and keep each window at W.
        for (int i = 0; i < 5; i++) engine.Decode([(sequence, reference.Greedy16[i])]);
        Assert.Equal((global * (long)(t + 5) + local * w) * rowBytes, engine.KvRowBytesPerRank().Sum());
    }

    private static PrefillResult Prefill(ReferenceModel reference, int ranks, string strategy, ApproximateOptions? options)
    {
        var (engine, weights) = reference.Open(ranks);
        using var _ = weights;
        using var __ = engine;
        return engine.Prefill([(engine.NewSequence(), reference.InputIds)], strategy, keepLast: 4, approximate: options);
    }
}
