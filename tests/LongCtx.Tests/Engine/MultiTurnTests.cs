using LongCtx.ContextParallel;
using LongCtx.Engine;
using LongCtx.Sampling;
using LongCtx.Tests.ContextParallel;

namespace LongCtx.Tests.Engine;

/// <summary>
/// A conversation that keeps its KV cache on the ranks gives the tokens of re-running it densely from scratch, and its
/// cache stays balanced over the ranks however short its turns.
/// </summary>
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

    /// <summary>
    /// Fifty short turns (1 to 2N + 3 new tokens, each followed by a few decoded ones) after a first prompt: the extra
    /// tokens of each uneven split go to the ranks that hold the fewest, so no rank ever holds more than ⌈total/N⌉ + 1
    /// positions (the plan used to give them to the first ranks every turn, and nothing to the last ones).
    /// </summary>
    [Fact]
    public void ShortTurnsKeepTheCacheBalanced()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var config = LongCtx.Model.ModelConfig.Preset("tiny") with { NumLayers = 1 };
        using var weights = LongCtx.Model.ModelWeights.Dummy(config, seed, LongCtx.Tensors.DType.F32);
        int ranks = random.Next(2, 6);
        using var engine = new InferenceEngine(config, new LongCtx.Backends.Cpu.CpuRankGroup(config, weights, ranks));
        var sequence = engine.NewSequence();
        int[] Tokens(int n) => Enumerable.Range(0, n).Select(_ => random.Next(config.VocabSize)).ToArray();
        engine.Prefill([(sequence, Tokens(random.Next(10, 60)))], StrategyNames.PassKv);
        for (int turn = 0; turn < 50; turn++)
        {
            engine.Prefill([(sequence, Tokens(random.Next(1, 2 * ranks + 4)))], random.Next(2) == 0 ? StrategyNames.PassKv : StrategyNames.PassQ);
            for (int step = random.Next(4); step > 0; step--) engine.Decode([(sequence, random.Next(config.VocabSize))]);
            int total = sequence.Placement.Count, bound = (total + ranks - 1) / ranks + 1;
            var held = Enumerable.Range(0, ranks).Select(r => sequence.Placement.On(r).Length).ToArray();
            Assert.True(held.Max() <= bound, $"seed {seed}, turn {turn}: ranks hold [{string.Join(", ", held)}] of {total} positions; at most {bound} each");
        }
    }
}
