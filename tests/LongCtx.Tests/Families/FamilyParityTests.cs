using LongCtx.ContextParallel;
using LongCtx.Tests.ContextParallel;
using LongCtx.Tests.Engine;

namespace LongCtx.Tests.Families;

/// <summary>
/// Qwen3, sliding-window Mistral and Qwen2, Gemma 2 and Gemma 3 against their reference fixtures (tests/data/families,
/// bench/reference/README.md) on the whole 2083-token prompt, whose windows of 64-192 keys every position past them
/// depends on: the last four positions' logits within 1e-3 relative, the argmax at every position (but those whose
/// top-2 margin the reference's float32 RoPE tables may flip, <see cref="ReferenceModel.ArgmaxMarginTolerated"/>), and
/// the 16 greedy tokens decoded on the engine's cache — on one rank and on three with each ring.
/// </summary>
public class FamilyParityTests
{
    public static TheoryData<string, int, string> Cases()
    {
        var data = new TheoryData<string, int, string>();
        foreach (var model in ReferenceModel.FamilyNames)
        {
            data.Add(model, 1, StrategyNames.Dense);
            foreach (var ranks in new[] { 2, 3, 5, 8 })
                foreach (var strategy in new[] { StrategyNames.PassKv, StrategyNames.PassQ, StrategyNames.Auto })
                    data.Add(model, ranks, strategy);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesTheReference(string model, int ranks, string strategy)
    {
        var reference = ReferenceModel.Named(model);
        var (engine, weights) = reference.Open(ranks);
        using var _ = weights;
        using var __ = engine;
        var sequence = engine.NewSequence();
        var prefill = engine.Prefill([(sequence, reference.InputIds)], strategy, keepLast: 4, argmaxAll: true);
        string what = $"{model} N={ranks} {strategy}";

        double error = DenseReference.RelativeError(prefill.Logits[0], reference.LogitsLast4);
        Assert.True(error < 1e-3, $"{what}: logits relative error {error:e2}");
        var wrong = reference.ArgmaxMismatches(prefill.ArgmaxAll![0], reference.InputIds.Length);
        Assert.True(wrong.Length == 0, $"{what}: argmax differs at positions {string.Join(", ", wrong.Take(10))} ({wrong.Length} in all)");
        var tokens = reference.GreedyContinuation(engine, sequence, prefill.Logits[0].AsSpan(3 * reference.Config.VocabSize).ToArray());
        Assert.Equal(reference.Greedy16, tokens);
    }
}
