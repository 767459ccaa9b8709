using LongCtx.ContextParallel;
using LongCtx.Engine;
using LongCtx.Sampling;
using LongCtx.Tests.Engine;

namespace LongCtx.Tests.Sampling;

/// <summary>
/// Logit bias and the presence, frequency and repetition penalties, as vLLM's sampler applies them (bias, then
/// repetition over the prompt's and the output's tokens, then frequency and presence over the output's), held to a dense
/// rewrite of vLLM's apply_penalties over the whole vocabulary: the sparse adjustment a draw carries changes exactly the
/// logits it should, by exactly as much; a greedy generation with penalties through the engine loop draws, step after
/// step, the argmax of the dense reference on the engine's own logits; and a request's options are checked.
/// </summary>
public class PenaltyTests
{
    /// <summary>vLLM's apply_penalties, dense: masks and counts over the vocabulary, the logit bias first.</summary>
    private static float[] Reference(float[] logits, int[] prompt, IReadOnlyList<int> output, SamplingOptions o)
    {
        var x = logits.ToArray();
        foreach (var (token, bias) in o.LogitBias ?? new Dictionary<int, float>()) x[token] += bias;
        var inPrompt = new bool[x.Length];
        foreach (int t in prompt) inPrompt[t] = true;
        var counts = new int[x.Length];
        foreach (int t in output) counts[t]++;
        for (int i = 0; i < x.Length; i++)
        {
            float penalty = inPrompt[i] || counts[i] > 0 ? o.RepetitionPenalty : 1f;
            x[i] = x[i] > 0 ? x[i] / penalty : x[i] * penalty;
            x[i] -= o.FrequencyPenalty * counts[i];
            x[i] -= o.PresencePenalty * (counts[i] > 0 ? 1 : 0);
        }
        return x;
    }

    private static SamplingOptions RandomOptions(Random random, int vocab) => new(0.8f, Seed: random.Next())
    {
        PresencePenalty = (float)(random.NextDouble() * 4 - 2),
        FrequencyPenalty = (float)(random.NextDouble() * 4 - 2),
        RepetitionPenalty = (float)(0.5 + random.NextDouble() * 1.5),
        LogitBias = Enumerable.Range(0, random.Next(0, 6)).Select(_ => random.Next(vocab)).Distinct().ToDictionary(t => t, _ => (float)(random.NextDouble() * 200 - 100)),
    };

    [Fact]
    public void TheDrawsAdjustmentIsVllmsPenaltiesOnEveryLogit()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int trial = 0; trial < 50; trial++)
        {
            int vocab = random.Next(2, 3000);
            var options = RandomOptions(random, vocab);
            int[] prompt = [.. Enumerable.Range(0, random.Next(0, 40)).Select(_ => random.Next(vocab))];
            var sampler = new Sampler(options, prompt);
            var output = new List<int>();
            for (int step = 0; step < 8; step++)
            {
                var logits = Enumerable.Range(0, vocab).Select(_ => (float)(random.NextDouble() * 20 - 10)).ToArray();
                var expected = Reference(logits, prompt, output, options);
                var adjusted = logits.ToArray();
                sampler.Draw().Adjust!.ApplyTo(adjusted);
                for (int i = 0; i < vocab; i++)
                    Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(adjusted[i]),
                        $"seed {seed}, trial {trial}, step {step}, token {i}: {adjusted[i]}, vLLM's {expected[i]}");
                int token = random.Next(3) == 0 && output.Count > 0 ? output[random.Next(output.Count)] : random.Next(vocab);
                sampler.Observe(token);
                output.Add(token);
            }
        }
    }

    [Fact]
    public void HostDrawsPickFromTheAdjustedLogits()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int trial = 0; trial < 40; trial++)
        {
            int vocab = random.Next(2, 2000);
            var options = RandomOptions(random, vocab) with { Temperature = trial % 2 == 0 ? 0f : 0.7f, TopK = random.Next(0, 50), TopP = 0.9f };
            int[] prompt = [.. Enumerable.Range(0, 20).Select(_ => random.Next(vocab))];
            var logits = Enumerable.Range(0, vocab).Select(_ => (float)(random.NextDouble() * 6 - 3)).ToArray();
            var draw = new Sampler(options, prompt).Draw();
            var adjusted = Reference(logits, prompt, [], options);
            int expected = draw.IsGreedy ? Sampler.ArgMax(adjusted) : TokenPicker.Pick(adjusted, draw with { Adjust = null });
            Assert.True(expected == TokenPicker.Draw(logits, draw), $"seed {seed}, trial {trial}");
        }
    }

    /// <summary>A logit bias of +100 on one token makes it every greedy pick; one of -100 on the greedy token moves the pick.</summary>
    [Fact]
    public void BiasDecidesGreedyPicks()
    {
        var logits = new float[] { 1f, 5f, 2f, 4.5f };
        Assert.Equal(2, TokenPicker.Draw(logits, TokenDraw.Greedy with { Adjust = new Sampler(new SamplingOptions { LogitBias = new Dictionary<int, float> { [2] = 100 } }).Draw().Adjust }));
        Assert.Equal(3, TokenPicker.Draw(logits, TokenDraw.Greedy with { Adjust = new Sampler(new SamplingOptions { LogitBias = new Dictionary<int, float> { [1] = -100 } }).Draw().Adjust }));
    }

    [Fact]
    public void GreedyGenerationWithPenaltiesIsTheArgmaxOfTheReferenceOnTheEnginesLogits()
    {
        var reference = ReferenceModel.TinyLlama3;
        var (engine, weights) = reference.Open(2);
        using var _ = weights;
        using var __ = engine;
        int[] prompt = reference.InputIds[..200];
        var options = new SamplingOptions { RepetitionPenalty = 1.3f, FrequencyPenalty = 0.7f, PresencePenalty = 0.4f, LogitBias = new Dictionary<int, float> { [prompt[5]] = 3f } };
        const int steps = 12;
        var loop = new EngineLoop(engine);
        var run = loop.Admit(new GenerationRequest(prompt, steps, options, StrategyNames.PassKv));
        while (loop.HasWork) loop.Step(int.MaxValue);

        // The same generation by hand: the engine's logits, vLLM's penalties on them, the argmax.
        var sequence = engine.NewSequence();
        var logits = engine.Prefill([(sequence, prompt)], StrategyNames.PassKv).Logits[0];
        var expected = new List<int>();
        var plain = new List<int>();
        for (int step = 0; step < steps; step++)
        {
            int token = Sampler.ArgMax(Reference(logits, prompt, expected, options));
            plain.Add(Sampler.ArgMax(logits));
            expected.Add(token);
            if (step + 1 < steps) logits = engine.Decode([(sequence, token)])[0];
        }
        engine.Release(sequence);
        engine.Release(run.Sequence);
        Assert.Equal(expected, run.Generated);
        Assert.NotEqual(plain, expected); // the penalties changed the generation: the comparison above was not of plain greedy runs
    }

    [Theory]
    [InlineData(2.5f, 0f, 1f, Setting.PresencePenalty)]
    [InlineData(0f, -2.01f, 1f, Setting.FrequencyPenalty)]
    [InlineData(0f, 0f, 0f, Setting.RepetitionPenalty)]
    [InlineData(0f, 0f, float.NaN, Setting.RepetitionPenalty)]
    public void OutOfRangePenaltiesAreRefused(float presence, float frequency, float repetition, Setting setting)
    {
        var e = Assert.Throws<SettingException>(() => new SamplingOptions { PresencePenalty = presence, FrequencyPenalty = frequency, RepetitionPenalty = repetition }.Validate());
        Assert.Equal(setting, e.Setting);
        Assert.Equal(Setting.LogitBias, Assert.Throws<SettingException>(() => new SamplingOptions { LogitBias = new Dictionary<int, float> { [3] = 101 } }.Validate()).Setting);
    }
}
