using LongCtx.Backends.Cpu;
using LongCtx.ContextParallel;
using LongCtx.Engine;
using LongCtx.Sampling;
using LongCtx.Tests.ContextParallel;

namespace LongCtx.Tests.Engine;

/// <summary>
/// The prompt's logprobs computed where the logits are (Prefill's promptLogprobs, a slice of rows at a time on the
/// lead rank) against the log-softmax of every row's logits kept whole: each new token's logprob at the row before
/// it and the row's most likely tokens, for a batch of two fresh random prompts, on one rank and on three, whole and
/// in chunks (a piece's last row scores the next piece's first token).
/// </summary>
public class PromptLogprobsTests
{
    [Theory]
    [InlineData(1, false)]
    [InlineData(3, false)]
    [InlineData(3, true)]
    public void EqualTheLogSoftmaxOfEveryRow(int ranks, bool chunked)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var reference = ReferenceModel.TinyLlama3;
        var (whole, weights) = reference.Open(ranks);
        using var _ = weights;
        using var __ = whole;
        using var scored = new InferenceEngine(reference.Config, new CpuRankGroup(reference.Config, weights, ranks)) { PrefillChunkTokens = chunked ? random.Next(3, 40) : null };
        // The second prompt runs past one 256-row slice of logits.
        int[][] prompts = [.. Enumerable.Range(0, 2).Select(p => Enumerable.Range(0, p == 0 ? random.Next(2, 120) : random.Next(257, 320)).Select(_ => random.Next(8000)).ToArray())];
        int top = random.Next(0, 6), vocab = reference.Config.VocabSize;
        string what = $"seed {seed}, {ranks} ranks, chunks of {scored.PrefillChunkTokens?.ToString() ?? "all"}, top {top}";

        var logits = whole.Prefill(prompts.Select(p => (whole.NewSequence(), p)).ToList(), StrategyNames.PassKv, keepLast: 1000).Logits;
        var result = scored.Prefill(prompts.Select(p => (scored.NewSequence(), p)).ToList(), StrategyNames.PassKv, promptLogprobs: top);
        for (int i = 0; i < prompts.Length; i++)
        {
            var positions = result.PromptLogprobs![i];
            Assert.Equal(prompts[i].Length - 1, positions.Length);
            for (int j = 0; j < positions.Length; j++)
            {
                var expected = Logprobs.Of(logits[i].AsSpan(j * vocab, vocab), prompts[i][j + 1], top);
                Assert.True(Math.Abs(expected.Logprob - positions[j].Logprob) < 1e-4, $"{what}: sequence {i}, row {j}: {positions[j].Logprob} against {expected.Logprob}");
                Assert.Equal(expected.Top.Select(t => t.Token), positions[j].Top.Select(t => t.Token));
            }
            double error = DenseReference.RelativeError(result.Logits[i], logits[i].AsSpan(logits[i].Length - vocab).ToArray());
            Assert.True(error < 1e-5, $"{what}: sequence {i}: the last row's logits differ by {error:e2}");
        }
    }
}
