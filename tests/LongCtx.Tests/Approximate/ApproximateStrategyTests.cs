using LongCtx.Approximate;
using LongCtx.Backends.Cpu;
using LongCtx.Comm;
using LongCtx.ContextParallel;
using LongCtx.Tensors;
using LongCtx.Tests.ContextParallel;

namespace LongCtx.Tests.Approximate;

/// <summary>
/// The context phase of Star Attention and APB on random attention problems: where the approximation
/// vanishes (APB passing whole blocks, equal or not; Star on one rank) they equal dense causal attention to float
/// rounding, for every document row a rank computes (anchor copy and block; the embedded query rows only
/// score, seeing the blocks up to their rank's, and are recomputed exactly in the query phase).
/// </summary>
public class ApproximateStrategyTests
{
    private const double Tolerance = 1e-5;

    [Fact]
    public void ApbPassingWholeBlocksEqualsDenseAttention()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int trial = 0; trial < 12; trial++)
        {
            var p = Problem.Random(random, random.Next(1, 7));
            int document = p.Length - p.Query;
            // Equal blocks, or blocks of any lengths (a balanced split's are unequal).
            var lengths = random.Next(2) == 0 ? null : RandomLengths(random, document, p.Ranks);
            var blocks = new ContextBlocks(p.Ranks, document, p.Query, random.Next(0, document / p.Ranks + 2), passingTokens: document, embedQuery: true, lengths);
            var error = p.RelativeErrorAgainstDense(blocks, () => new ApbAttention(blocks, new QueryAttentionScorer()));
            Assert.True(error < Tolerance, $"seed {seed} trial {trial} {p} {blocks}: relative error {error:e2}");
        }
    }

    /// <summary>Lengths of at least 1 that sum to <paramref name="total"/>: <paramref name="parts"/> − 1 distinct random cuts.</summary>
    private static int[] RandomLengths(Random random, int total, int parts)
    {
        var cuts = Enumerable.Range(1, total - 1).OrderBy(_ => random.Next()).Take(parts - 1).Order().Prepend(0).Append(total).ToArray();
        return Enumerable.Range(0, parts).Select(i => cuts[i + 1] - cuts[i]).ToArray();
    }

    [Fact]
    public void StarOnOneRankEqualsDenseAttention()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int trial = 0; trial < 8; trial++)
        {
            var p = Problem.Random(random, ranks: 1);
            var blocks = new ContextBlocks(1, p.Length - p.Query, p.Query, random.Next(0, 40), 0, embedQuery: false);
            var error = p.RelativeErrorAgainstDense(blocks, () => new StarAttention(blocks));
            Assert.True(error < Tolerance, $"seed {seed} trial {trial} {p}: relative error {error:e2}");
        }
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

    /// <summary>Random q, k, v for every position of a document followed by a query.</summary>
    private sealed class Problem
    {
        public required int Ranks, Heads, KvHeads, HeadDim, Length, Query;
        public required float[] Q, K, V;

        public static Problem Random(Random r, int ranks)
        {
            int kvHeads = r.Next(1, 4), heads = kvHeads * r.Next(1, 5), d = new[] { 8, 16 }[r.Next(2)];
            int query = r.Next(1, 6), length = query + ranks + r.Next(0, 20 * ranks + 30);
            float[] Fill(int n) => Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray();
            return new Problem
            {
                Ranks = ranks, Heads = heads, KvHeads = kvHeads, HeadDim = d, Length = length, Query = query,
                Q = Fill(length * heads * d), K = Fill(length * kvHeads * d), V = Fill(length * kvHeads * d),
            };
        }

        public override string ToString() => $"N={Ranks} H={Heads} KVH={KvHeads} D={HeadDim} T={Length} K={Query}";

        /// <summary>Runs the strategy on every rank's context rows; the error of its document rows against dense causal attention at their positions.</summary>
        public double RelativeErrorAgainstDense(ContextBlocks blocks, Func<IAttentionStrategy> strategy)
        {
            var all = Enumerable.Range(0, Length).ToArray();
            var outputs = new InProcessGroup(Ranks).Run(comm =>
            {
                using var b = new CpuBackend(1);
                int r = comm.Rank;
                var rows = blocks.ContextLayout(r);
                var documentRows = rows.Slice(0, blocks.AnchorCopy(r) + blocks.BlockLength(r));
                using var cache = new SequenceKv(b, 1, KvHeads, HeadDim);
                var step = new AttentionStep
                {
                    Rank = r,
                    QueriesByRank = Enumerable.Range(0, Ranks).Select(blocks.ContextLayout).ToArray(),
                    KeysByRank = Enumerable.Range(0, Ranks).Select(x => blocks.ContextLayout(x).Slice(blocks.AnchorCopy(x), blocks.BlockLength(x))).ToArray(),
                    Caches = [cache],
                    Appends = [new KvAppend(0, blocks.AnchorCopy(r), blocks.BlockLength(r))],
                };
                using var q = Gather(b, rows, Q, Heads);
                using var k = Gather(b, rows, K, KvHeads);
                using var v = Gather(b, rows, V, KvHeads);
                using var o = strategy().Attend(new AttentionLayer(b, comm, step, 0, Heads, KvHeads, HeadDim), q, k, v);
                var host = new float[o.Length];
                b.Download<float>(o, host);
                var expected = DenseReference.Attention(Rows(Q, documentRows, Heads), documentRows.SeqIds, documentRows.Positions,
                    K, V, new int[Length], all, Heads, KvHeads, HeadDim);
                Assert.Equal(blocks.BlockLength(r), cache.Count);
                return (host: host[..expected.Length], expected);
            });
            return DenseReference.RelativeError(outputs.SelectMany(o => o.host).ToArray(), outputs.SelectMany(o => o.expected).ToArray());
        }

        private float[] Rows(float[] source, TokenLayout layout, int heads) =>
            layout.Positions.SelectMany(p => source.AsSpan(p * heads * HeadDim, heads * HeadDim).ToArray()).ToArray();

        private Tensor Gather(CpuBackend b, TokenLayout layout, float[] source, int heads) =>
            b.Upload<float>(Rows(source, layout, heads), layout.Count, heads, HeadDim);
    }
}
