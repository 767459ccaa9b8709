using LongCtx.ContextParallel;
using LongCtx.Engine;
using LongCtx.Sampling;
using LongCtx.Tests.ContextParallel;

namespace LongCtx.Tests.Engine;

/// <summary>A conversation that keeps its KV cache on the ranks gives the tokens of re-running it densely from scratch.</summary>
public class MultiTurnTests
{
    [Theory]
    [InlineData("tiny-llama3", 3, StrategyNames.PassKv)]
    [InlineData("tiny-llama3", 4, StrategyNames.PassQ)]
    [InlineData("tiny-qwen2", 5, StrategyNames.Auto)]
    public void SecondTurnReusesTheDistributedCache(string model, int ranks, string strategy)
    {
        var reference = ReferenceModel.Named(model);
        var random = new Random(Random.Shared.Next());
        int vocab = Math.Min(reference.Config.VocabSize, 8000);
        var turn1 = reference.InputIds[..(700 + random.Next(300))];
        var turn2 = Enumerable.Range(0, 20 + random.Next(200)).Select(_ => random.Next(vocab)).ToArray();
        var greedy = new SamplingOptions();

        var (engine, weights) = reference.Open(ranks);
        using var _ = weights;
        using var __ = engine;
        var conversation = engine.NewSequence();
        var first = engine.Generate(conversation, new GenerationRequest(turn1, 6, greedy, strategy));
        int[] whole = [.. turn1, .. first.Tokens, .. turn2];
        var second = engine.Generate(conversation, new GenerationRequest(whole, 8, greedy, strategy));
        Assert.Equal(turn1.Length + first.Tokens.Count - 1, second.CachedTokens); // all but the last generated token

        var (dense, denseWeights) = reference.Open(1);
        using var ___ = denseWeights;
        using var ____ = dense;
        var rerun = dense.Generate(dense.NewSequence(), new GenerationRequest(whole, 8, greedy, StrategyNames.Dense));
        Assert.Equal(rerun.Tokens, second.Tokens);
        Assert.True(DenseReference.RelativeError(second.PromptLogits, rerun.PromptLogits) < 1e-4);
    }
}
