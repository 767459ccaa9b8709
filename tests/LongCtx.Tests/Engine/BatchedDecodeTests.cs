using LongCtx.Engine;
using LongCtx.Tests.Parallel;

namespace LongCtx.Tests.Engine;

/// <summary>
/// Decode steps batched over several sequences (what `bench --batch` times) give each sequence the logits it
/// gets decoded alone, step after step, while every rank's cache grows past its prefill size; DecodeGreedy of the
/// same batch gives the argmax of those logits.
/// </summary>
public class BatchedDecodeTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void BatchedStepsEqualStepsAlone(int ranks)
    {
        var reference = ReferenceModel.TinyLlama3;
        var random = new Random(Random.Shared.Next());
        int vocab = Math.Min(reference.Config.VocabSize, 8000);
        int[][] prompts = [reference.InputIds, .. Enumerable.Range(0, 2).Select(_ => Enumerable.Range(0, 5 + random.Next(60)).Select(_ => random.Next(vocab)).ToArray())];
        const int steps = 24;

        var (engine, weights) = reference.Open(ranks);
        using var _ = weights;
        using var __ = engine;
        var batched = prompts.Select(_ => engine.NewSequence()).ToList();
        var alone = prompts.Select(_ => engine.NewSequence()).ToList();
        var greedy = prompts.Select(_ => engine.NewSequence()).ToList();
        var next = new int[prompts.Length];
        for (int i = 0; i < prompts.Length; i++)
        {
            next[i] = Sampler.ArgMax(engine.Prefill([(batched[i], prompts[i])], StrategyNames.PassKv).Logits[0]);
            engine.Prefill([(alone[i], prompts[i])], StrategyNames.PassKv);
            engine.Prefill([(greedy[i], prompts[i])], StrategyNames.PassKv);
        }
        var firstTokens = new List<int> { next[0] };
        for (int step = 0; step < steps; step++)
        {
            var logits = engine.Decode(batched.Select((s, i) => (s, next[i])).ToList());
            var tokens = engine.DecodeGreedy(greedy.Select((s, i) => (s, next[i])).ToList());
            for (int i = 0; i < prompts.Length; i++)
            {
                var single = engine.Decode([(alone[i], next[i])])[0];
                double error = DenseReference.RelativeError(logits[i], single);
                Assert.True(error < 1e-5, $"step {step}, sequence {i}: batched logits differ by {error:e2}");
                next[i] = Sampler.ArgMax(logits[i]);
                Assert.True(tokens[i] == next[i], $"step {step}, sequence {i}: DecodeGreedy gave {tokens[i]}, the logits' argmax is {next[i]}");
            }
            firstTokens.Add(next[0]);
        }
        Assert.Equal(reference.Greedy16, firstTokens.Take(reference.Greedy16.Length));
    }
}
