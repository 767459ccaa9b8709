using LongCtx.ContextParallel;
using LongCtx.Sampling;
using LongCtx.Tests.ContextParallel;

namespace LongCtx.Tests.Engine;

/// <summary>
/// Decode steps batched over several sequences (what `bench --batch` times) give each sequence the logits it
/// gets decoded alone, step after step, while every rank's cache grows past its prefill size; DecodeTokens of the
/// same batch, greedy for one sequence and sampled at a temperature with top-k and top-p for the others, draws the
/// tokens a host Sampler with the same seed draws from those logits, and with logprobs, the log-softmax of those logits.
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
        var drawn = prompts.Select(_ => engine.NewSequence()).ToList();
        int seed = random.Next();
        SamplingOptions SamplingOf(int i) => i == 0 ? new SamplingOptions() : new SamplingOptions(0.5f + i, TopP: 0.9f, TopK: 40 * i, Seed: seed + i);
        var onBackend = prompts.Select((_, i) => new Sampler(SamplingOf(i))).ToArray();
        var onHost = prompts.Select((_, i) => new Sampler(SamplingOf(i))).ToArray();
        var next = new int[prompts.Length];
        for (int i = 0; i < prompts.Length; i++)
        {
            next[i] = Sampler.ArgMax(engine.Prefill([(batched[i], prompts[i])], StrategyNames.PassKv).Logits[0]);
            engine.Prefill([(alone[i], prompts[i])], StrategyNames.PassKv);
            engine.Prefill([(drawn[i], prompts[i])], StrategyNames.PassKv);
        }
        var firstTokens = new List<int> { next[0] };
        for (int step = 0; step < steps; step++)
        {
            var logits = engine.Decode(batched.Select((s, i) => (s, next[i])).ToList());
            int top = step % 3 == 0 ? 0 : step % 5;
            var (tokens, logprobs) = engine.DecodeTokens(drawn.Select((s, i) => (s, next[i])).ToList(), onBackend.Select(s => s.Draw()).ToList(), step % 3 == 0 ? null : top);
            for (int i = 0; i < prompts.Length; i++)
            {
                var single = engine.Decode([(alone[i], next[i])])[0];
                double error = DenseReference.RelativeError(logits[i], single);
                Assert.True(error < 1e-5, $"step {step}, sequence {i}: batched logits differ by {error:e2}");
                int expected = onHost[i].Next(logits[i]);
                Assert.True(tokens[i] == expected, $"seed {seed}, step {step}, sequence {i}: DecodeTokens drew {tokens[i]}, the host sampler {expected}");
                if (logprobs is not null)
                {
                    var position = Logprobs.Of(logits[i], tokens[i], top);
                    Assert.True(Math.Abs(position.Logprob - logprobs[i].Logprob) < 1e-5, $"seed {seed}, step {step}, sequence {i}: logprob {logprobs[i].Logprob}, of the logits {position.Logprob}");
                    Assert.Equal(position.Top.Select(t => t.Token), logprobs[i].Top.Select(t => t.Token));
                }
                else Assert.True(step % 3 == 0, "logprobs were asked for");
                next[i] = Sampler.ArgMax(logits[i]);
            }
            firstTokens.Add(next[0]);
        }
        Assert.Equal(reference.Greedy16, firstTokens.Take(reference.Greedy16.Length));
    }
}
