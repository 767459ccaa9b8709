using LongCtx.Approximate;
using LongCtx.Backends.Cpu;
using LongCtx.ContextParallel;
using LongCtx.Model;
using LongCtx.Tensors;
using LongCtx.Tests.Approximate;
using LongCtx.Tests.ContextParallel;
using LongCtx.Tests.Model;

namespace LongCtx.Tests.Engine;

/// <summary>
/// Star and APB through the whole model on the fixtures: where the approximation vanishes they match the
/// engine's dense prefill (logits of the last four positions within 1e-4 relative); retaining heads load
/// from their file, score as it says, and choose the entries APB passes.
/// </summary>
public class ApproximateModelTests
{
    [Theory]
    [InlineData("tiny-llama3")]
    [InlineData("tiny-qwen2")]
    public void ApbPassingWholeBlocksMatchesDense(string model)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        int ranks = random.Next(2, 6), query = random.Next(4, 24);
        var reference = ReferenceModel.Named(model);
        var dense = Prefill(reference, 1, StrategyNames.Dense, null);
        var options = new ApproximateOptions(query, AnchorTokens: random.Next(0, 200), PassingTokens: reference.InputIds.Length);
        var apb = Prefill(reference, ranks, StrategyNames.Apb, options);
        double error = DenseReference.RelativeError(apb, dense);
        Assert.True(error < 1e-4, $"seed {seed} {model} N={ranks} {options}: relative error {error:e2}");
    }

    [Fact]
    public void StarOnOneRankMatchesDense()
    {
        var reference = ReferenceModel.TinyLlama3;
        var dense = Prefill(reference, 1, StrategyNames.Dense, null);
        var star = Prefill(reference, 1, StrategyNames.Star, new ApproximateOptions(8));
        double error = DenseReference.RelativeError(star, dense);
        Assert.True(error < 1e-4, $"relative error {error:e2}");
    }

    [Fact]
    public void RetainingHeadsLoadAndScoreAsTheirFileSays()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var reference = ReferenceModel.TinyQwen2;
        var config = reference.Config;
        using var dir = ModelFixtures.NewTempDir();
        const int hidden = 16;
        int qWidth = config.NumHeads * config.HeadDim, kvWidth = config.NumKvHeads * config.HeadDim;
        var host = WriteRandomHeads(dir.File(RetainingHeadWeights.FileName), config, random, hidden);

        using var heads = RetainingHeadWeights.TryLoad(dir.Path, config)!;
        using var backend = new CpuBackend(1);
        using var scorer = new RetainingHeadScorer(backend, heads);
        int n = 5, layer = config.NumLayers - 1;
        float[] Fill(int count) => Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        float[] q = Fill(n * qWidth), k = Fill(n * kvWidth), v = Fill(n * kvWidth);
        using var qt = backend.Upload<float>(q, n, config.NumHeads, config.HeadDim);
        using var kt = backend.Upload<float>(k, n, config.NumKvHeads, config.HeadDim);
        using var vt = backend.Upload<float>(v, n, config.NumKvHeads, config.HeadDim);
        var attention = new AttentionLayer(backend, null!, null!, layer, config.NumHeads, config.NumKvHeads, config.HeadDim);
        using var scores = scorer.Score(new CompressionInput(attention, qt, kt, vt, new TokenLayout(new int[n], Enumerable.Range(0, n).ToArray()), qt, TokenLayout.Empty));
        var actual = new float[n * config.NumKvHeads];
        backend.Download<float>(scores, actual);

        float[] W(string part) => host[$"layers.{layer}.{part}"];
        for (int t = 0; t < n; t++)
        {
            double[] Project(string kind) => Enumerable.Range(0, hidden).Select(i =>
                Dot(W($"{kind}_q"), i, q, t, qWidth) + Dot(W($"{kind}_k"), i, k, t, kvWidth) + Dot(W($"{kind}_v"), i, v, t, kvWidth)).ToArray();
            var gate = Project("gate");
            var up = Project("up");
            var h = gate.Select((g, i) => g / (1 + Math.Exp(-g)) * up[i]).ToArray();
            for (int g = 0; g < config.NumKvHeads; g++)
            {
                double expected = Enumerable.Range(0, hidden).Sum(i => (double)W("down")[g * hidden + i] * h[i]);
                Assert.True(Math.Abs(actual[t * config.NumKvHeads + g] - expected) < 1e-3 * (1 + Math.Abs(expected)),
                    $"seed {seed} row {t} head {g}: {actual[t * config.NumKvHeads + g]} vs {expected}");
            }
        }

        // The heads drive APB end to end: with blocks short enough to select from, APB's logits are not those it
        // gives with the query-attention scorer (ApbPassesWhatTheRetainingHeadsChoose checks the choice itself).
        float[] ApbLogits(RetainingHeadWeights? retaining)
        {
            var (e, w) = reference.Open(3);
            using var ___ = w;
            using var ____ = e;
            return e.Prefill([(e.NewSequence(), reference.InputIds)], StrategyNames.Apb, 1,
                approximate: new ApproximateOptions(8, PassingTokens: 40, RetainingHeads: retaining)).Logits[0];
        }
        double apart = DenseReference.RelativeError(ApbLogits(heads), ApbLogits(null));
        Assert.True(apart > 1e-3, $"seed {seed}: APB's logits with retaining heads are within {apart:e2} of those with query attention");

        // Under tensor parallelism each rank scores with its heads' share of the retaining heads and sums over the
        // group: the same compression, so the same logits to rounding — with passing blocks small enough to select.
        float[] Apb(int tensorRanks)
        {
            var (e, w) = reference.Open(2, tensorRanks);
            using var ___ = w;
            using var ____ = e;
            return e.Prefill([(e.NewSequence(), reference.InputIds)], StrategyNames.Apb, 2,
                approximate: new ApproximateOptions(8, AnchorTokens: 16, PassingTokens: 24, RetainingHeads: heads)).Logits[0];
        }
        double split = DenseReference.RelativeError(Apb(2), Apb(1));
        Assert.True(split < 1e-5, $"seed {seed}: APB with retaining heads over 2 tensor ranks differs from 1 by {split:e2}");
    }

    /// <summary>
    /// APB's context phase with retaining heads on N > 1 ranks (random q, k, v of tiny-qwen2's shape, random heads):
    /// each block row sees, per KV head, exactly the entries of every earlier rank that the heads, called directly on
    /// those entries, score highest — computed in double as in <see cref="ApproximateStrategyTests"/> — and those are
    /// mostly not the entries the query-attention scorer would choose.
    /// </summary>
    [Fact]
    public void ApbPassesWhatTheRetainingHeadsChoose()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var config = ReferenceModel.TinyQwen2.Config;
        using var dir = ModelFixtures.NewTempDir();
        WriteRandomHeads(dir.File(RetainingHeadWeights.FileName), config, random, hidden: 16);
        using var heads = RetainingHeadWeights.TryLoad(dir.Path, config)!;
        using var backend = new CpuBackend(1);
        using var scorer = new RetainingHeadScorer(backend, heads);
        var layer = new AttentionLayer(backend, null!, null!, 0, config.NumHeads, config.NumKvHeads, config.HeadDim);
        int checkedTrials = 0, unlikeQueryAttention = 0;
        for (int attempt = 0; checkedTrials < 8 && attempt < 60; attempt++)
        {
            var p = AttentionProblem.Random(random, random.Next(2, 5), (config.NumHeads, config.NumKvHeads, config.HeadDim));
            var probe = new ContextBlocks(p.Ranks, p.Document, p.Query, 0, 0, embedQuery: true);
            int anchor = random.Next(0, probe.BlockLength(0) / 2);
            int fewest = Enumerable.Range(0, p.Ranks - 1).Min(r => probe.BlockLength(r) - (r == 0 ? anchor : 0));
            if (fewest < 4) continue;
            var blocks = new ContextBlocks(p.Ranks, p.Document, p.Query, anchor, random.Next(1, fewest / 2 + 1), embedQuery: true);

            IReadOnlyList<double> HeadScores(int rank)
            {
                var (q, k, v, layout) = p.Upload(backend, AttentionProblem.Candidates(blocks, rank));
                var (queryQ, _, _, queries) = p.Upload(backend, Enumerable.Range(p.Document, p.Query).ToArray());
                using (q) using (k) using (v) using (queryQ)
                {
                    using var scores = scorer.Score(new CompressionInput(layer, q, k, v, layout, queryQ, queries));
                    var values = new float[scores.Length];
                    backend.Download<float>(scores, values);
                    return values.Select(x => (double)x).ToArray();
                }
            }
            if (p.Passed(blocks, HeadScores) is not { } passed) continue;
            var outputs = p.Run(blocks, b => new ApbWithRetainingHeads(blocks, new RetainingHeadScorer(b, heads)));
            double error = ApproximateStrategyTests.ErrorAgainst(outputs, r => p.Expected(blocks, r, passed));
            Assert.True(error < 1e-5, $"seed {seed} attempt {attempt} {p} {blocks}: relative error {error:e2} against the entries the heads choose");
            var byQuery = p.Passed(blocks, s => p.QueryAttentionScores(blocks, s));
            if (byQuery is null || !passed.Zip(byQuery).All(pair => pair.First.Zip(pair.Second).All(g => g.First.SequenceEqual(g.Second))))
                unlikeQueryAttention++;
            checkedTrials++;
        }
        Assert.True(checkedTrials == 8, $"seed {seed}: only {checkedTrials} of the random problems had a clear choice of entries");
        Assert.True(unlikeQueryAttention >= 6, $"seed {seed}: the heads chose what query attention chooses in {8 - unlikeQueryAttention} of 8 problems");
    }

    /// <summary>APB with retaining heads on one rank's backend, disposed with it.</summary>
    private sealed class ApbWithRetainingHeads(ContextBlocks blocks, RetainingHeadScorer scorer) : IAttentionStrategy, IDisposable
    {
        private readonly ApbAttention _apb = new(blocks, scorer);

        public string Name => _apb.Name;
        public Tensor Attend(AttentionLayer layer, Tensor q, Tensor k, Tensor v) => _apb.Attend(layer, q, k, v);
        public void Dispose() => scorer.Dispose();
    }

    /// <summary>Random retaining heads for <paramref name="config"/> written to <paramref name="path"/>; their values by tensor name.</summary>
    private static Dictionary<string, float[]> WriteRandomHeads(string path, ModelConfig config, Random random, int hidden)
    {
        int qWidth = config.NumHeads * config.HeadDim, kvWidth = config.NumKvHeads * config.HeadDim;
        var tensors = new List<(string, DType, int[], ReadOnlyMemory<byte>)>();
        var host = new Dictionary<string, float[]>();
        for (int l = 0; l < config.NumLayers; l++)
            foreach (var (part, shape) in new[] { ("gate_q", new[] { hidden, qWidth }), ("gate_k", [hidden, kvWidth]), ("gate_v", [hidden, kvWidth]),
                         ("up_q", [hidden, qWidth]), ("up_k", [hidden, kvWidth]), ("up_v", [hidden, kvWidth]), ("down", [config.NumKvHeads, hidden]) })
            {
                var values = Enumerable.Range(0, shape[0] * shape[1]).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
                host[$"layers.{l}.{part}"] = values;
                tensors.Add(($"layers.{l}.{part}", DType.F32, shape, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray()));
            }
        SafetensorsWriter.Write(path, tensors);
        return host;
    }

    [Fact]
    public void RetainingHeadFileWithAMissingTensorIsRefused()
    {
        var config = ReferenceModel.TinyQwen2.Config;
        using var dir = ModelFixtures.NewTempDir();
        SafetensorsWriter.Write(dir.File(RetainingHeadWeights.FileName), [("layers.0.down", DType.F32, [1, 1], new byte[4])]);
        var e = Assert.Throws<LongCtxException>(() => RetainingHeadWeights.TryLoad(dir.Path, config));
        Assert.Contains("layers.0.gate_q", e.Message);
    }

    private static double Dot(float[] w, int row, float[] x, int t, int width)
    {
        double s = 0;
        for (int j = 0; j < width; j++) s += (double)w[row * width + j] * x[t * width + j];
        return s;
    }

    private static float[] Prefill(ReferenceModel reference, int ranks, string strategy, ApproximateOptions? options)
    {
        var (engine, weights) = reference.Open(ranks);
        using var _ = weights;
        using var __ = engine;
        return engine.Prefill([(engine.NewSequence(), reference.InputIds)], strategy, keepLast: 4, approximate: options).Logits[0];
    }
}
