using LongCtx.Backends.Cpu;
using LongCtx.ContextParallel;
using LongCtx.Engine;
using LongCtx.Model;
using LongCtx.Tests.ContextParallel;

namespace LongCtx.Tests.Engine;

/// <summary>
/// Chunked prefill (<see cref="InferenceEngine.PrefillChunkTokens"/>): the prompt prefilled a random number of
/// tokens at a time against the cache it builds still matches transformers — the last four positions' logits,
/// the argmax at every position and the greedy continuation — on one rank and on three with each exact ring;
/// and a batch of two prompts chunked gives what it gives whole.
/// </summary>
public class ChunkedPrefillTests
{
    [Theory]
    [InlineData("tiny-llama3", 1, StrategyNames.Dense)]
    [InlineData("tiny-llama3", 3, StrategyNames.PassKv)]
    [InlineData("tiny-qwen2", 3, StrategyNames.PassQ)]
    [InlineData("tiny-qwen2", 2, StrategyNames.Auto)]
    public void ChunkedPrefillMatchesTransformers(string model, int ranks, string strategy)
    {
        int seed = Random.Shared.Next();
        int chunk = new Random(seed).Next(2, 150);
        var reference = ReferenceModel.Named(model);
        using var weights = ModelWeights.Load(reference.Directory, reference.Config);
        using var engine = new InferenceEngine(reference.Config, new CpuRankGroup(reference.Config, weights, ranks)) { PrefillChunkTokens = chunk };
        var sequence = engine.NewSequence();
        var prefill = engine.Prefill([(sequence, reference.InputIds)], strategy, keepLast: 4, argmaxAll: true);
        string what = $"seed {seed}: {model} N={ranks} {strategy}, chunks of {chunk}";

        double error = DenseReference.RelativeError(prefill.Logits[0], reference.LogitsLast4);
        Assert.True(error < reference.LogitsTolerance, $"{what}: logits relative error {error:e2}");
        Assert.Equal(reference.ArgmaxAll, prefill.ArgmaxAll![0]);
        Assert.Equal(reference.Greedy16, reference.GreedyContinuation(engine, sequence, prefill.Logits[0].AsSpan(3 * reference.Config.VocabSize).ToArray()));
    }

    [Fact]
    public void ChunkedBatchEqualsWholeBatch()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var reference = ReferenceModel.TinyLlama3;
        var (whole, weights) = reference.Open(3);
        using var _ = weights;
        using var __ = whole;
        using var chunked = new InferenceEngine(reference.Config, new CpuRankGroup(reference.Config, weights, 3)) { PrefillChunkTokens = random.Next(5, 60) };
        int[][] prompts = [.. Enumerable.Range(0, 2).Select(_ => Enumerable.Range(0, random.Next(20, 200)).Select(_ => random.Next(8000)).ToArray())];
        int keep = random.Next(1, 30);
        var expected = whole.Prefill(prompts.Select(p => (whole.NewSequence(), p)).ToList(), StrategyNames.PassKv, keep);
        var actual = chunked.Prefill(prompts.Select(p => (chunked.NewSequence(), p)).ToList(), StrategyNames.PassKv, keep);
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(expected.Logits[i].Length, actual.Logits[i].Length);
            double error = DenseReference.RelativeError(actual.Logits[i], expected.Logits[i]);
            Assert.True(error < 1e-5, $"seed {seed}, sequence {i} of {prompts[i].Length} tokens, chunks of {chunked.PrefillChunkTokens}, keep {keep}: relative error {error:e2}");
        }
    }

    /// <summary>
    /// A prefill's progress: every layer of every piece reported once, in order, by the lead rank, with the time left;
    /// the count runs to the end whole or chunked.
    /// </summary>
    [Theory]
    [InlineData(1, null)]
    [InlineData(3, null)]
    [InlineData(2, 40)]
    public void ProgressCountsEveryLayerOfEveryPiece(int ranks, int? chunk)
    {
        var reference = ReferenceModel.TinyLlama3;
        using var weights = ModelWeights.Load(reference.Directory, reference.Config);
        using var engine = new InferenceEngine(reference.Config, new CpuRankGroup(reference.Config, weights, ranks)) { PrefillChunkTokens = chunk };
        var reports = new List<PrefillProgress>();
        engine.OnPrefillProgress = p => { lock (reports) reports.Add(p); };
        var prompt = reference.InputIds[..100];
        var sequence = engine.NewSequence();
        engine.Prefill([(sequence, prompt)], StrategyNames.PassKv);

        int layers = reference.Config.NumLayers * (chunk is { } c ? (prompt.Length + c - 1) / c : 1);
        Assert.Equal(Enumerable.Range(1, layers), reports.Select(p => p.LayersDone));
        Assert.All(reports, p => Assert.Equal(layers, p.Layers));
        Assert.True(reports.Zip(reports.Skip(1)).All(pair => pair.First.Elapsed <= pair.Second.Elapsed));
        Assert.Equal(TimeSpan.Zero, reports[^1].Remaining);
        Assert.Equal(1.0, reports[^1].Fraction);

        // A decode step is no prefill: nothing reported.
        reports.Clear();
        engine.Decode([(sequence, 1)]);
        Assert.Empty(reports);
    }
}
