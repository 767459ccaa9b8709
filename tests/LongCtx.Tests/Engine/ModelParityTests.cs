using LongCtx.ContextParallel;
using LongCtx.Tests.ContextParallel;

namespace LongCtx.Tests.Engine;

/// <summary>
/// The whole model against Hugging Face transformers (float64 references): the last four positions'
/// logits within a few times the error measured on each fixture (<see cref="ReferenceModel.LogitsTolerance"/>), the argmax at every prompt position, and the 16 greedy tokens exactly —
/// on one rank and on N ∈ {2, 3, 5, 8} ranks with each exact strategy, and with each layer split over two
/// tensor-parallel ranks (both fixtures have two KV heads) under N ∈ {1, 2, 3} context ranks.
/// </summary>
public class ModelParityTests
{
    public static TheoryData<string, int, string, int> Cases()
    {
        var data = new TheoryData<string, int, string, int>();
        foreach (var model in new[] { "tiny-llama3", "tiny-qwen2" })
        {
            data.Add(model, 1, StrategyNames.Dense, 1);
            foreach (var ranks in new[] { 2, 3, 5, 8 })
                foreach (var strategy in new[] { StrategyNames.PassKv, StrategyNames.PassQ, StrategyNames.Auto })
                    data.Add(model, ranks, strategy, 1);
            data.Add(model, 1, StrategyNames.Dense, 2);
            foreach (var ranks in new[] { 2, 3 })
                foreach (var strategy in new[] { StrategyNames.PassKv, StrategyNames.PassQ })
                    data.Add(model, ranks, strategy, 2);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesTransformers(string model, int ranks, string strategy, int tensorRanks)
    {
        var reference = ReferenceModel.Named(model);
        var (engine, weights) = reference.Open(ranks, tensorRanks);
        using var _ = weights;
        using var __ = engine;
        var sequence = engine.NewSequence();
        var prefill = engine.Prefill([(sequence, reference.InputIds)], strategy, keepLast: 4, argmaxAll: true);

        double error = DenseReference.RelativeError(prefill.Logits[0], reference.LogitsLast4);
        Assert.True(error < reference.LogitsTolerance, $"{model} N={ranks} TP={tensorRanks} {strategy}: logits relative error {error:e2}");
        var argmax = prefill.ArgmaxAll![0];
        int mismatches = argmax.Zip(reference.ArgmaxAll, (a, b) => a == b ? 0 : 1).Sum();
        Assert.True(mismatches == 0, $"{model} N={ranks} TP={tensorRanks} {strategy}: argmax differs at {mismatches} of {argmax.Length} positions");

        // Greedy continuation on the distributed cache.
        var tokens = reference.GreedyContinuation(engine, sequence, prefill.Logits[0].AsSpan(3 * reference.Config.VocabSize).ToArray());
        Assert.Equal(reference.Greedy16, tokens);
    }
}
