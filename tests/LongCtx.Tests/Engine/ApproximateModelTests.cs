using LongCtx.Approximate;
using LongCtx.ContextParallel;
using LongCtx.Model;
using LongCtx.Tensors;
using LongCtx.Tests.ContextParallel;
using LongCtx.Tests.Model;

namespace LongCtx.Tests.Engine;

/// <summary>
/// Star and APB through the whole model on the fixtures: where the approximation vanishes they match the
/// engine's dense prefill (logits of the last four positions within 1e-4 relative); retaining heads load
/// from their file and drive APB's compression.
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
        SafetensorsWriter.Write(dir.File(RetainingHeadWeights.FileName), tensors);

        using var heads = RetainingHeadWeights.TryLoad(dir.Path, config)!;
        using var backend = new LongCtx.Backends.Cpu.CpuBackend(1);
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

        // The heads drive APB end to end; with l_p covering every block it stays exact.
        var (engine, weights) = reference.Open(3);
        using var _ = weights;
        using var __ = engine;
        var prefill = engine.Prefill([(engine.NewSequence(), reference.InputIds)], StrategyNames.Apb, 1,
            approximate: new ApproximateOptions(8, PassingTokens: 40, RetainingHeads: heads));
        Assert.All(prefill.Logits[0], x => Assert.True(float.IsFinite(x)));

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
