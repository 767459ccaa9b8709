using LongCtx.ContextParallel;
using LongCtx.Engine;
using LongCtx.Sampling;
using LongCtx.Tests.ContextParallel;

namespace LongCtx.Tests.Engine;

/// <summary>
/// The engine loop: every front end's generations go through it. Its first token is drawn where the later ones are,
/// with the seeded numbers a host sampler would use on the prefill's logits; and chunked prefill (<see cref="ChunkedPrefill"/>,
/// the server's policy: decode every running request, spend the rest of the step's budget on prefill chunks of waiting
/// ones, fused) interleaves long prompts with other requests' tokens and gives what running each alone gives.
/// </summary>
public class EngineLoopTests
{
    [Theory]
    [InlineData(0f)]
    [InlineData(0.8f)]
    public void FirstTokenIsTheHostSamplersOnThePrefillsLogits(float temperature)
    {
        int seed = Random.Shared.Next();
        var reference = ReferenceModel.TinyQwen2;
        var (engine, weights) = reference.Open(2);
        using var _ = weights;
        using var __ = engine;
        var sampling = new SamplingOptions(temperature, TopP: 0.9f, TopK: 50, Seed: seed);
        var loop = new EngineLoop(engine);
        var run = loop.Admit(new GenerationRequest(reference.InputIds, 1, sampling, StrategyNames.PassKv, KeepLastLogits: 1) { Logprobs = 3 });
        var output = Assert.Single(loop.Step(int.MaxValue).Outputs);
        Assert.Equal(FinishReason.Length, output.Finish);

        int expected = new Sampler(sampling).Next(run.PromptLogits);
        Assert.True(output.Token == expected, $"seed {seed}, temperature {temperature}: drew {output.Token}, the host sampler {expected}");
        var logprobs = Logprobs.Of(run.PromptLogits, expected, 3);
        Assert.Equal(logprobs.Top.Select(t => t.Token), output.Logprobs!.Top.Select(t => t.Token));
        Assert.True(Math.Abs(logprobs.Logprob - output.Logprobs.Logprob) < 1e-5, $"seed {seed}: logprob {output.Logprobs.Logprob}, of the logits {logprobs.Logprob}");
    }

    [Fact]
    public void ChunkedPrefillBesideDecodeGivesWhatEachRequestGivesAlone()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var reference = ReferenceModel.TinyLlama3;
        var (engine, weights) = reference.Open(3);
        using var _ = weights;
        using var __ = engine;
        int[] shortPrompt = [.. Enumerable.Range(0, random.Next(5, 40)).Select(_ => random.Next(1000, 9000))];
        var requests = new[]
        {
            new GenerationRequest(shortPrompt, 12, new SamplingOptions(0.7f, Seed: seed), StrategyNames.PassKv, KeepLastLogits: 1),
            new GenerationRequest(reference.InputIds, 4, new SamplingOptions(), StrategyNames.PassKv, KeepLastLogits: 3) { PromptLogprobs = 2, Logprobs = 1 },
        };
        var alone = requests.Select(r => Run(new EngineLoop(engine), [r])[0]).ToArray();

        int budget = random.Next(40, 200);
        var interleaved = new EngineLoop(engine, new ChunkedPrefill());
        var states = Run(interleaved, requests, budget, out int stepsWithBoth);
        string what = $"seed {seed}, budget {budget}";
        Assert.True(stepsWithBoth > 0, $"{what}: no step decoded the short request beside a piece of the long one's prefill");
        for (int i = 0; i < requests.Length; i++)
        {
            Assert.Equal(alone[i].Generated, states[i].Generated);
            Assert.Equal(alone[i].Finish, states[i].Finish);
            double error = DenseReference.RelativeError(states[i].PromptLogits, alone[i].PromptLogits);
            Assert.True(error < 1e-5, $"{what}, request {i}: kept logits differ by {error:e2}");
        }
        var (wholeScored, chunkScored) = (alone[1].PromptLogprobs!, states[1].PromptLogprobs!);
        Assert.Equal(reference.InputIds.Length - 1, chunkScored.Count);
        for (int j = 0; j < wholeScored.Count; j++)
        {
            Assert.True(Math.Abs(wholeScored[j].Logprob - chunkScored[j].Logprob) < 1e-4, $"{what}: prompt logprob {j} {chunkScored[j].Logprob}, whole {wholeScored[j].Logprob}");
            Assert.Equal(wholeScored[j].Top.Select(t => t.Token), chunkScored[j].Top.Select(t => t.Token));
        }
    }

    /// <summary>
    /// Several prompts at once under a small budget: chunks of different requests share a step's engine call, decodes run
    /// beside them, a request that wants its prompt's logprobs is chunked alone, and every request gets what it gets alone.
    /// </summary>
    [Fact]
    public void FusedChunksOfSeveralPromptsGiveWhatEachGivesAlone()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var reference = ReferenceModel.TinyLlama3;
        var (engine, weights) = reference.Open(2);
        using var _ = weights;
        using var __ = engine;
        int[] Prompt(int n) => [.. Enumerable.Range(0, n).Select(_ => random.Next(1000, 9000))];
        var requests = new[]
        {
            new GenerationRequest(Prompt(random.Next(3, 30)), 10, new SamplingOptions(0.9f, TopK: 40, Seed: seed), StrategyNames.PassKv),
            new GenerationRequest(Prompt(random.Next(300, 700)), 5, new SamplingOptions(), StrategyNames.PassKv, KeepLastLogits: 2),
            new GenerationRequest(Prompt(random.Next(200, 400)), 3, new SamplingOptions(), StrategyNames.PassKv) { PromptLogprobs = 1 },
            new GenerationRequest(Prompt(random.Next(100, 500)), 6, new SamplingOptions(0.7f, Seed: seed + 1), StrategyNames.PassKv) { Logprobs = 2 },
        };
        var alone = requests.Select(r => Run(new EngineLoop(engine), [r])[0]).ToArray();

        int budget = random.Next(64, 160);
        var loop = new EngineLoop(engine, new ChunkedPrefill());
        var states = requests.Select(loop.Admit).ToArray();
        int fusedSteps = 0;
        while (loop.HasWork)
        {
            var before = states.Select(s => s.Prefilled).ToArray();
            int decoding = loop.Decoding.Count;
            var step = loop.Step(budget);
            var advanced = states.Where((s, i) => s.Prefilled != before[i]).ToList();
            if (advanced.Count > 1) fusedSteps++;
            Assert.True(advanced.Sum(s => s.Prefilled - before[Array.IndexOf(states, s)]) <= Math.Max(1, budget - decoding), $"seed {seed}: a step prefilled past the budget");
            Assert.False(advanced.Count > 1 && advanced.Contains(states[2]), $"seed {seed}: the prompt-logprobs request was fused with another");
        }
        foreach (var s in states) engine.Release(s.Sequence);
        Assert.True(fusedSteps > 0, $"seed {seed}, budget {budget}: no step fused chunks of two prompts");
        for (int i = 0; i < requests.Length; i++)
        {
            Assert.True(alone[i].Generated.SequenceEqual(states[i].Generated), $"seed {seed}, budget {budget}, request {i}: [{string.Join(',', states[i].Generated)}], alone [{string.Join(',', alone[i].Generated)}]");
            double error = DenseReference.RelativeError(states[i].PromptLogits, alone[i].PromptLogits);
            Assert.True(error < 1e-5, $"seed {seed}, request {i}: kept logits differ by {error:e2}");
        }
        for (int j = 0; j < alone[2].PromptLogprobs!.Count; j++)
            Assert.True(Math.Abs(alone[2].PromptLogprobs![j].Logprob - states[2].PromptLogprobs![j].Logprob) < 1e-4, $"seed {seed}: prompt logprob {j}");
    }

    private static RequestState[] Run(EngineLoop loop, GenerationRequest[] requests, int budget = int.MaxValue) => Run(loop, requests, budget, out _);

    private static RequestState[] Run(EngineLoop loop, GenerationRequest[] requests, int budget, out int stepsWithBoth)
    {
        var states = requests.Select(loop.Admit).ToArray();
        stepsWithBoth = 0;
        while (loop.HasWork)
        {
            var step = loop.Step(budget);
            if (step.Decode is not null && step.PrefillCalls > 0) stepsWithBoth++;
        }
        foreach (var s in states) loop.Engine.Release(s.Sequence);
        return states;
    }
}
