using LongCtx.Backends;
using LongCtx.Backends.Cpu;
using LongCtx.Comm;
using LongCtx.ContextParallel;
using LongCtx.Tensors;
using Xunit.Abstractions;

namespace LongCtx.Tests.ContextParallel;

/// <summary>
/// A model with a sliding-window layer (0) and a full-attention one (1), on N ranks: the halo exchange and the ring
/// equal dense attention (windowed, and full) to float32 rounding on random problems — N 1..8, several sequences,
/// cached prefixes spread over random ranks, windows shorter and longer than a chunk; decode on the distributed cache
/// does too; afterwards each rank's window holds exactly its rows of the sequence's last W positions. A counting
/// communicator shows what travels: on a first turn the windowed layer sends each rank only the keys before its
/// chunks that it sees — at most W − 1 rows of K and as many of V per chunk boundary — while the full layer moves
/// every rank's block N − 1 hops, as pass-KV did before.
/// </summary>
public class WindowedStrategyTests(ITestOutputHelper log)
{
    private const double Tolerance = 1e-5;

    [Theory]
    [InlineData("pass-kv")]
    [InlineData("pass-q")]
    public void PrefillEqualsDenseAttention(string ring)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int trial = 0; trial < 20; trial++)
        {
            var problem = Problem.Random(random, decode: false);
            IAttentionStrategy full = ring == "pass-kv" ? new RingPassKv() : new RingPassQ();
            var (outputs, held) = problem.Run(new LayerAttention(full, new HaloAttention()));
            for (int layer = 0; layer < 2; layer++)
            {
                double error = DenseReference.RelativeError(outputs[layer], problem.Expected(layer));
                Assert.True(error < Tolerance, $"seed {seed} trial {trial} {problem}, layer {layer}: relative error {error:e2}");
            }
            problem.AssertWindowsHoldTheirLastPositions(held, $"seed {seed} trial {trial} {problem}");
        }
        log.WriteLine($"seed {seed}: 20 random problems equal dense attention");
    }

    [Fact]
    public void DecodeOnTheDistributedCacheEqualsDenseAttention()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int trial = 0; trial < 16; trial++)
        {
            var problem = Problem.Random(random, decode: true);
            var (outputs, held) = problem.Run(new LayerAttention(new DistributedDecode()));
            for (int layer = 0; layer < 2; layer++)
            {
                double error = DenseReference.RelativeError(outputs[layer], problem.Expected(layer));
                Assert.True(error < Tolerance, $"seed {seed} trial {trial} {problem}, layer {layer}: relative error {error:e2}");
            }
            problem.AssertWindowsHoldTheirLastPositions(held, $"seed {seed} trial {trial} {problem}");
        }
    }

    [Theory]
    [InlineData(2, 1000, 64)]
    [InlineData(4, 2083, 128)]
    [InlineData(8, 2083, 128)]
    [InlineData(5, 700, 192)] // chunks of 70: a halo spans three chunks
    public void AWindowedLayerMovesOnlyTheHaloAndAFullLayerItsWholeRing(int ranks, int tokens, int window)
    {
        var random = new Random(Random.Shared.Next());
        var problem = Problem.FirstTurn(random, ranks, tokens, window);
        var counted = problem.Count(new LayerAttention(new RingPassKv(), new HaloAttention()));

        // Per rank: the positions before its chunks, within the window of their first queries, that other ranks hold
        // (once, though both its chunks may want them).
        var plan = problem.Plan;
        var owner = new int[tokens];
        for (int r = 0; r < ranks; r++) foreach (int p in plan.Shards[r].Queries.Positions) owner[p] = r;
        var wanted = Enumerable.Range(0, ranks).Select(_ => new HashSet<int>()).ToArray();
        int boundaries = 0;
        var starts = ShardPlan.ChunkStarts(tokens, 2 * ranks);
        for (int c = 1; c < 2 * ranks; c++)
        {
            if (starts[c] == starts[c + 1]) continue;
            int mine = owner[starts[c]];
            if (owner[starts[c] - 1] != mine) boundaries++;
            for (int p = Math.Max(0, starts[c] - window + 1); p < starts[c]; p++)
                if (owner[p] != mine) wanted[mine].Add(p);
        }
        long halo = wanted.Sum(w => (long)w.Count);
        Assert.Equal(2 * halo, counted.Windowed); // K and V
        Assert.True(counted.Windowed <= 2L * (window - 1) * boundaries, $"{counted.Windowed} rows for {boundaries} boundaries, window {window}");
        // The full layer: every rank's block of K and V passes N − 1 ranks.
        Assert.Equal(2L * (ranks - 1) * tokens, counted.Full);
        log.WriteLine($"N={ranks} T={tokens} W={window}: windowed layer {counted.Windowed} rows ({boundaries} chunk boundaries), full layer {counted.Full}");
    }

    /// <summary>
    /// Sequences with cached prefixes (placed on random ranks; the windowed layer holding only the prefix's last W
    /// positions, as after any earlier pass) and new tokens, q, k and v for every token drawn at random.
    /// </summary>
    private sealed class Problem : KvProblem
    {
        public required int Window;
        public required bool Decode;

        public ShardPlan Plan => ShardPlan.LoadBalanced(New.Select((n, s) => new SequenceInput(s, n, Placements()[s])).ToList(), Ranks);

        public static Problem Random(Random r, bool decode)
        {
            int ranks = r.Next(1, 9), kvHeads = r.Next(1, 3), group = r.Next(1, 4), d = new[] { 8, 16 }[r.Next(2)], seqs = r.Next(1, 4);
            var cached = Enumerable.Range(0, seqs).Select(_ => r.Next(3) == 0 ? 0 : r.Next(1, 90)).ToArray();
            var fresh = Enumerable.Range(0, seqs).Select(_ => decode ? 1 : r.Next(1, 8 * ranks + 30)).ToArray();
            if (decode) for (int i = 0; i < seqs; i++) cached[i] = Math.Max(cached[i], 1);
            return Make(r, ranks, kvHeads * group, kvHeads, d, r.Next(1, 60), cached, fresh, decode);
        }

        public static Problem FirstTurn(Random r, int ranks, int tokens, int window) => Make(r, ranks, 2, 1, 8, window, [0], [tokens], decode: false);

        private static Problem Make(Random r, int ranks, int heads, int kvHeads, int d, int window, int[] cached, int[] fresh, bool decode)
        {
            float[] Fill(int n) => Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray();
            return new Problem
            {
                Ranks = ranks, Heads = heads, KvHeads = kvHeads, HeadDim = d, Window = window, Cached = cached, New = fresh, Decode = decode,
                CachedRank = cached.Select(c => Enumerable.Range(0, c).Select(_ => r.Next(ranks)).ToArray()).ToArray(),
                Q = cached.Zip(fresh, (c, n) => Fill((c + n) * heads * d)).ToArray(),
                K = cached.Zip(fresh, (c, n) => Fill((c + n) * kvHeads * d)).ToArray(),
                V = cached.Zip(fresh, (c, n) => Fill((c + n) * kvHeads * d)).ToArray(),
            };
        }

        public override string ToString() =>
            $"N={Ranks} H={Heads} KVH={KvHeads} D={HeadDim} W={Window} cached=[{string.Join(",", Cached)}] new=[{string.Join(",", New)}]";

        /// <summary>Dense attention of every new token, sequence after sequence: layer 0 within the window, layer 1 over all.</summary>
        public float[] Expected(int layer)
        {
            var result = new List<float>();
            for (int s = 0; s < New.Length; s++)
            {
                int len = Cached[s] + New[s];
                var seq = Enumerable.Repeat(0, len).ToArray();
                result.AddRange(DenseReference.Attention(Q[s].AsSpan(Cached[s] * Heads * HeadDim, New[s] * Heads * HeadDim).ToArray(), seq[..New[s]],
                    Enumerable.Range(Cached[s], New[s]).ToArray(), K[s], V[s], seq, Enumerable.Range(0, len).ToArray(), Heads, KvHeads, HeadDim,
                    layer == 0 ? Window : null));
            }
            return result.ToArray();
        }

        /// <summary>Both layers on every rank: the outputs in batch order, and per rank and sequence the positions its window holds afterwards.</summary>
        public (float[][] Outputs, int[][][] Held) Run(IAttentionStrategy strategy)
        {
            var results = Execute(strategy);
            var outputs = new float[2][];
            for (int layer = 0; layer < 2; layer++)
                outputs[layer] = Decode ? results[0].Outputs[layer] : Plan.Unshard(results.Select(x => x.Outputs[layer]).ToList(), Heads * HeadDim);
            return (outputs, results.Select(x => x.Held).ToArray());
        }

        /// <summary>Rows the ring steps of each layer sent, over all ranks.</summary>
        public (long Windowed, long Full) Count(IAttentionStrategy strategy)
        {
            var counts = new long[Ranks, 2];
            Execute(strategy, counts);
            long windowed = 0, full = 0;
            for (int r = 0; r < Ranks; r++) { windowed += counts[r, 0]; full += counts[r, 1]; }
            return (windowed, full);
        }

        private (float[][] Outputs, int[][] Held)[] Execute(IAttentionStrategy strategy, long[,]? counts = null)
        {
            var placements = Placements();
            var plan = Plan;
            int n = New.Length;
            var decodeQueries = new TokenLayout(Enumerable.Range(0, n).ToArray(), Cached.ToArray());
            var decodeKeys = Enumerable.Range(0, Ranks).Select(r =>
            {
                var b = new TokenLayoutBuilder();
                for (int i = 0; i < n; i++)
                {
                    b.Append(i, placements[i].On(r));
                    if (Cached[i] % Ranks == r) b.Append(i, [Cached[i]]);
                }
                return b.Build();
            }).ToArray();
            return new InProcessGroup(Ranks).Run(inner =>
            {
                var comm = new CountingCommunicator(inner);
                using var backend = new CpuBackend(1);
                var caches = FillCaches(backend, comm.Rank);
                var queries = Decode ? decodeQueries : plan.Shards[comm.Rank].Queries;
                var step = new AttentionStep
                {
                    Rank = comm.Rank,
                    QueriesByRank = Decode ? Enumerable.Repeat(decodeQueries, Ranks).ToArray() : plan.Shards.Select(s => s.Queries).ToArray(),
                    KeysByRank = Decode ? decodeKeys : plan.Shards.Select(s => s.Keys).ToArray(),
                    Caches = caches,
                    Appends = Decode
                        ? Enumerable.Range(0, n).Where(i => Cached[i] % Ranks == comm.Rank).Select(i => new KvAppend(i, i, 1)).ToList()
                        : Enumerable.Range(0, n).Select(s => (s, rows: Enumerable.Range(0, queries.Count).Where(i => queries.SeqIds[i] == s).ToArray()))
                            .Where(x => x.rows.Length > 0).Select(x => new KvAppend(x.s, x.rows[0], x.rows.Length)).ToList(),
                };
                using var q = Gather(backend, queries, Q, Heads);
                using var k = Gather(backend, queries, K, KvHeads);
                using var v = Gather(backend, queries, V, KvHeads);
                var outputs = new float[2][];
                for (int layer = 0; layer < 2; layer++)
                {
                    long before = comm.RowsSent;
                    var rule = new AttentionRule(1f / MathF.Sqrt(HeadDim), layer == 0 ? Window : null);
                    using var o = strategy.Attend(new AttentionLayer(backend, comm, step, layer, Heads, KvHeads, HeadDim, rule), q, k, v);
                    if (counts is not null) counts[comm.Rank, layer] = comm.RowsSent - before;
                    outputs[layer] = new float[o.Length];
                    backend.Download<float>(o, outputs[layer]);
                }
                var held = caches.Select((c, s) => HeldPositions(backend, c, s)).ToArray();
                foreach (var c in caches) c.Dispose();
                return (outputs, held);
            });
        }

        /// <summary>Each rank's window, after the pass, holds its rows of the sequence's last W positions, in order.</summary>
        public void AssertWindowsHoldTheirLastPositions(int[][][] held, string what)
        {
            var placements = Placements();
            var plan = Plan;
            for (int r = 0; r < Ranks; r++)
                for (int s = 0; s < New.Length; s++)
                {
                    var mine = placements[s].On(r).ToArray().Concat(Decode
                        ? (Cached[s] % Ranks == r ? [Cached[s]] : [])
                        : Enumerable.Range(0, plan.Shards[r].Rows).Where(i => plan.Shards[r].Queries.SeqIds[i] == s).Select(i => plan.Shards[r].Queries.Positions[i]));
                    int length = Cached[s] + New[s];
                    Assert.True(mine.Where(p => p >= length - Window).SequenceEqual(held[r][s]),
                        $"{what}: rank {r} sequence {s} holds [{string.Join(",", held[r][s])}]");
                }
        }

        /// <summary>The positions of the rows the windowed layer of a cache holds, found by their K rows (random, so each is unique).</summary>
        private int[] HeldPositions(CpuBackend backend, SequenceKv cache, int s)
        {
            var keys = cache.Keys(0);
            var values = new float[keys.Length];
            backend.Download<float>(keys, values);
            int row = KvHeads * HeadDim, length = Cached[s] + New[s];
            return Enumerable.Range(0, keys.Rows).Select(i => Enumerable.Range(0, length)
                .First(p => values.AsSpan(i * row, row).SequenceEqual(K[s].AsSpan(p * row, row)))).ToArray();
        }

        /// <summary>Each rank's caches: the cached positions placed on it; the windowed layer 0 only those of the prefix's last W.</summary>
        private List<SequenceKv> FillCaches(CpuBackend backend, int rank) => Enumerable.Range(0, New.Length).Select(s =>
        {
            var kv = new SequenceKv(backend, 2, KvHeads, HeadDim, [Window, null]);
            var mine = Enumerable.Range(0, Cached[s]).Where(p => CachedRank[s][p] == rank).ToArray();
            foreach (var (layer, positions) in new[] { (0, mine.Where(p => p >= Cached[s] - Window).ToArray()), (1, mine) })
            {
                if (positions.Length == 0) continue;
                var layout = new TokenLayout(new int[positions.Length], positions);
                using var k = Gather(backend, layout, K, KvHeads, s);
                using var v = Gather(backend, layout, V, KvHeads, s);
                var (keys, values) = kv.Claim(layer, positions.Length);
                ((IBackend)backend).CopyEach((k, keys), (v, values));
            }
            return kv;
        }).ToList();
    }
}
