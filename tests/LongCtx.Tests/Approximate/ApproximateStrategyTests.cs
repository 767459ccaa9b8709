using LongCtx.Approximate;
using LongCtx.Backends.Cpu;
using LongCtx.ContextParallel;
using LongCtx.Tensors;
using LongCtx.Tests.ContextParallel;

namespace LongCtx.Tests.Approximate;

/// <summary>
/// The context phase of Star Attention and APB on random attention problems, against dense attention computed in
/// double over exactly the rows and mask each keeps (<see cref="AttentionProblem.Expected"/>): the anchor copy, the
/// rank's own block, and for APB the entries the earlier ranks chose to pass. Where the approximation vanishes (APB
/// passing whole blocks; Star on one rank) that is dense causal attention; on N > 1 ranks with shorter passing blocks
/// it is not, and the strategies must then be measurably off dense attention too. Every document row a rank computes
/// is checked (the embedded query rows only score, and are recomputed exactly in the query phase).
/// </summary>
public class ApproximateStrategyTests
{
    private const double Tolerance = 1e-5;

    /// <summary>How far from dense attention a strategy that drops entries must at least be.</summary>
    private const double Approximate = 1e-3;

    [Fact]
    public void ApbPassingWholeBlocksEqualsDenseAttention()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int trial = 0; trial < 12; trial++)
        {
            var p = AttentionProblem.Random(random, random.Next(1, 7));
            // Equal blocks, or blocks of any lengths (a balanced split's are unequal).
            var lengths = random.Next(2) == 0 ? null : RandomLengths(random, p.Document, p.Ranks);
            var blocks = new ContextBlocks(p.Ranks, p.Document, p.Query, random.Next(0, p.Document / p.Ranks + 2), passingTokens: p.Document, embedQuery: true, lengths);
            var error = ErrorAgainst(p.Run(blocks, _ => new ApbAttention(blocks, new QueryAttentionScorer())), r => p.Dense(blocks, r));
            Assert.True(error < Tolerance, $"seed {seed} trial {trial} {p} {blocks}: relative error {error:e2}");
        }
    }

    [Fact]
    public void StarOnOneRankEqualsDenseAttention()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int trial = 0; trial < 8; trial++)
        {
            var p = AttentionProblem.Random(random, ranks: 1);
            var blocks = new ContextBlocks(1, p.Document, p.Query, random.Next(0, 40), 0, embedQuery: false);
            var error = ErrorAgainst(p.Run(blocks, _ => new StarAttention(blocks)), r => p.Dense(blocks, r));
            Assert.True(error < Tolerance, $"seed {seed} trial {trial} {p}: relative error {error:e2}");
        }
    }

    /// <summary>Star on N > 1 ranks with an anchor shorter than block 0: each block sees the anchor and itself, nothing between.</summary>
    [Fact]
    public void StarOnSeveralRanksSeesAnchorAndOwnBlock()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int trial = 0; trial < 10; trial++)
        {
            var p = AttentionProblem.Random(random, random.Next(2, 7));
            var lengths = random.Next(2) == 0 ? null : RandomLengths(random, p.Document, p.Ranks);
            var probe = new ContextBlocks(p.Ranks, p.Document, p.Query, 0, 0, embedQuery: false, lengths);
            var blocks = new ContextBlocks(p.Ranks, p.Document, p.Query, random.Next(0, probe.BlockLength(0)), 0, embedQuery: false, lengths);
            var nothing = Enumerable.Range(0, p.Ranks).Select(_ => Enumerable.Repeat(Array.Empty<int>(), p.KvHeads).ToArray()).ToArray();
            var outputs = p.Run(blocks, _ => new StarAttention(blocks));
            string where = $"seed {seed} trial {trial} {p} {blocks}";
            double error = ErrorAgainst(outputs, r => p.Expected(blocks, r, nothing)), dense = ErrorAgainst(outputs, r => p.Dense(blocks, r));
            Assert.True(error < Tolerance, $"{where}: relative error {error:e2} against what Star keeps");
            Assert.True(dense > Approximate, $"{where}: relative error {dense:e2} against dense attention, though block 1 on does not see block 0 past the anchor");
        }
    }

    /// <summary>
    /// APB on N > 1 ranks passing at most half the entries any rank may pass: each block row also sees, per KV head, the
    /// l_p entries of every earlier rank the query's attention scores highest.
    /// </summary>
    [Fact]
    public void ApbPassingShortBlocksSeesTheEntriesTheQueryChooses()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        int checkedTrials = 0;
        for (int attempt = 0; checkedTrials < 12 && attempt < 100; attempt++)
        {
            var p = AttentionProblem.Random(random, random.Next(2, 7));
            var lengths = random.Next(2) == 0 ? null : RandomLengths(random, p.Document, p.Ranks);
            var probe = new ContextBlocks(p.Ranks, p.Document, p.Query, 0, 0, embedQuery: true, lengths);
            int anchor = random.Next(0, probe.BlockLength(0));
            int fewest = Enumerable.Range(0, p.Ranks - 1).Min(r => probe.BlockLength(r) - (r == 0 ? anchor : 0));
            var blocks = new ContextBlocks(p.Ranks, p.Document, p.Query, anchor, random.Next(0, (fewest + 1) / 2), embedQuery: true, lengths);
            if (p.Passed(blocks, s => p.QueryAttentionScores(blocks, s)) is not { } passed) continue;
            var outputs = p.Run(blocks, _ => new ApbAttention(blocks, new QueryAttentionScorer()));
            string where = $"seed {seed} attempt {attempt} {p} {blocks}";
            double error = ErrorAgainst(outputs, r => p.Expected(blocks, r, passed)), dense = ErrorAgainst(outputs, r => p.Dense(blocks, r));
            Assert.True(error < Tolerance, $"{where}: relative error {error:e2} against what APB keeps");
            Assert.True(dense > Approximate, $"{where}: relative error {dense:e2} against dense attention, though every passing rank drops entries");
            checkedTrials++;
        }
        Assert.True(checkedTrials == 12, $"seed {seed}: only {checkedTrials} of the random problems had a clear choice of entries");
    }

    /// <summary>The relative error of every rank's rows against what <paramref name="expected"/> gives for each rank.</summary>
    internal static double ErrorAgainst(float[][] outputs, Func<int, float[]> expected) =>
        DenseReference.RelativeError(outputs.SelectMany(o => o).ToArray(), Enumerable.Range(0, outputs.Length).SelectMany(expected).ToArray());

    /// <summary>Lengths of at least 1 that sum to <paramref name="total"/>: <paramref name="parts"/> − 1 distinct random cuts.</summary>
    private static int[] RandomLengths(Random random, int total, int parts)
    {
        var cuts = Enumerable.Range(1, total - 1).OrderBy(_ => random.Next()).Take(parts - 1).Order().Prepend(0).Append(total).ToArray();
        return Enumerable.Range(0, parts).Select(i => cuts[i + 1] - cuts[i]).ToArray();
    }

    [Fact]
    public void CompressionKeepsTheTopEntriesOfEachKvHeadAtTheirPositions()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int trial = 0; trial < 8; trial++)
        {
            int kvHeads = random.Next(1, 4), heads = kvHeads * random.Next(1, 4), d = 8, n = random.Next(2, 60), queries = random.Next(1, 6);
            int keep = random.Next(1, n), offset = random.Next(0, 100);
            using var b = new CpuBackend(1);
            var layout = new TokenLayout(new int[n], Enumerable.Range(offset, n).ToArray());
            var queryLayout = new TokenLayout(new int[queries], Enumerable.Range(offset + n + 10, queries).ToArray());
            float[] Fill(int count) => Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            float[] qHost = Fill(queries * heads * d), kHost = Fill(n * kvHeads * d), vHost = Fill(n * kvHeads * d);
            using var q = b.Upload<float>(qHost, queries, heads, d);
            using var k = b.Upload<float>(kHost, n, kvHeads, d);
            using var v = b.Upload<float>(vHost, n, kvHeads, d);
            using var keptK = b.Allocate(DType.F32, keep, kvHeads, d);
            using var keptV = b.Allocate(DType.F32, keep, kvHeads, d);
            var layer = new AttentionLayer(b, null!, null!, 0, heads, kvHeads, d);
            using var scores = new QueryAttentionScorer().Score(new CompressionInput(layer, null!, k, v, layout, q, queryLayout));
            using var keptRows = b.Allocate(DType.I32, keep, kvHeads);
            KvCompression.Compress(layer, scores, k, v, keep, keptK, keptV, keptRows);
            var rowsKept = new int[keep * kvHeads];
            b.Download<int>(keptRows, rowsKept);
            var positions = Enumerable.Range(0, kvHeads).Select(h => Enumerable.Range(0, keep).Select(i => layout.Positions[rowsKept[i * kvHeads + h]]).ToArray()).ToArray();

            var expectedScores = Mass(qHost, kHost, queries, n, heads, kvHeads, d);
            var kk = new float[keep * kvHeads * d];
            var vv = new float[keep * kvHeads * d];
            b.Download<float>(keptK, kk);
            b.Download<float>(keptV, vv);
            string where = $"seed {seed} trial {trial} n={n} keep={keep} KVH={kvHeads} H={heads}";
            Assert.Equal(kvHeads, positions.Length);
            for (int h = 0; h < kvHeads; h++)
            {
                Assert.True(positions[h].Length == keep, where);
                Assert.True(positions[h].Distinct().Count() == keep && positions[h].SequenceEqual(positions[h].Order()), where);
                var rows = positions[h].Select(pos => pos - offset).ToArray();
                // No dropped entry scores above a kept one.
                double lowestKept = rows.Min(r => expectedScores[r * kvHeads + h]);
                double highestDropped = Enumerable.Range(0, n).Except(rows).Select(r => expectedScores[r * kvHeads + h]).DefaultIfEmpty(double.NegativeInfinity).Max();
                Assert.True(lowestKept >= highestDropped - 1e-5, $"{where} head {h}: kept {lowestKept}, dropped {highestDropped}");
                for (int i = 0; i < keep; i++)
                {
                    Assert.Equal(kHost.AsSpan((rows[i] * kvHeads + h) * d, d).ToArray(), kk.AsSpan((i * kvHeads + h) * d, d).ToArray());
                    Assert.Equal(vHost.AsSpan((rows[i] * kvHeads + h) * d, d).ToArray(), vv.AsSpan((i * kvHeads + h) * d, d).ToArray());
                }
            }
        }
    }

    /// <summary>The query-attention score the obvious way, in double.</summary>
    private static double[] Mass(float[] q, float[] k, int tq, int tk, int heads, int kvHeads, int d)
    {
        var mass = new double[tk * kvHeads];
        int group = heads / kvHeads;
        for (int i = 0; i < tq; i++)
            for (int h = 0; h < heads; h++)
            {
                int g = h / group;
                var s = Enumerable.Range(0, tk).Select(j => Enumerable.Range(0, d).Sum(x => (double)q[(i * heads + h) * d + x] * k[(j * kvHeads + g) * d + x]) / Math.Sqrt(d)).ToArray();
                double max = s.Max(), sum = s.Sum(x => Math.Exp(x - max));
                for (int j = 0; j < tk; j++) mass[j * kvHeads + g] += Math.Exp(s[j] - max) / sum;
            }
        return mass;
    }
}
