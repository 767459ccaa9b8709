using LongCtx.Backends;
using LongCtx.Backends.Cpu;
using LongCtx.Comm;
using LongCtx.ContextParallel;
using LongCtx.Tensors;
using Xunit.Abstractions;

namespace LongCtx.Tests.ContextParallel;

/// <summary>
/// Property tests: pass-KV, pass-Q and distributed decode equal dense attention to float32 rounding on
/// random problems — N 1..8, lengths not divisible by 2N, GQA 1..8, several fused sequences, cached
/// prefixes of random length placed on random ranks.
/// </summary>
public class ExactStrategyTests(ITestOutputHelper log)
{
    private const double Tolerance = 1e-5;

    public static TheoryData<string> Strategies => new() { "pass-kv", "pass-q" };

    [Theory]
    [MemberData(nameof(Strategies))]
    public void PrefillEqualsDenseAttention(string strategy)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int trial = 0; trial < 24; trial++)
        {
            var problem = Problem.Random(random);
            var actual = problem.RunPrefill(strategy == "pass-kv" ? new RingPassKv() : new RingPassQ());
            double error = DenseReference.RelativeError(actual, problem.Expected());
            Assert.True(error < Tolerance, $"seed {seed} trial {trial} {problem}: relative error {error:e2}");
        }
        log.WriteLine($"seed {seed}: 24 random problems equal dense attention");
    }

    [Fact]
    public void DecodeOnTheDistributedCacheEqualsDenseAttention()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int trial = 0; trial < 16; trial++)
        {
            var problem = Problem.Random(random, decode: true);
            var actual = problem.RunDecode();
            double error = DenseReference.RelativeError(actual, problem.Expected());
            Assert.True(error < Tolerance, $"seed {seed} trial {trial} {problem}: relative error {error:e2}");
        }
    }

    /// <summary>
    /// A random attention problem: sequences with cached prefixes (KV already placed on random ranks) and
    /// new tokens; q, k, v for every token drawn at random.
    /// </summary>
    private sealed class Problem : KvProblem
    {
        public static Problem Random(Random r, bool decode = false)
        {
            int ranks = r.Next(1, 9), kvHeads = r.Next(1, 4), group = r.Next(1, 9), d = new[] { 8, 16, 32 }[r.Next(3)];
            int seqs = r.Next(1, 4);
            var cached = Enumerable.Range(0, seqs).Select(_ => r.Next(3) == 0 ? 0 : r.Next(1, 70)).ToArray();
            var fresh = Enumerable.Range(0, seqs).Select(_ => decode ? 1 : r.Next(1, 6 * ranks + 11)).ToArray();
            if (decode) for (int i = 0; i < seqs; i++) cached[i] = Math.Max(cached[i], 1);
            float[] Fill(int n) => Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray();
            return new Problem
            {
                Ranks = ranks, Heads = kvHeads * group, KvHeads = kvHeads, HeadDim = d, Cached = cached, New = fresh,
                CachedRank = cached.Select(c => Enumerable.Range(0, c).Select(_ => r.Next(ranks)).ToArray()).ToArray(),
                Q = cached.Zip(fresh, (c, n) => Fill((c + n) * kvHeads * group * d)).ToArray(),
                K = cached.Zip(fresh, (c, n) => Fill((c + n) * kvHeads * d)).ToArray(),
                V = cached.Zip(fresh, (c, n) => Fill((c + n) * kvHeads * d)).ToArray(),
            };
        }

        public override string ToString() =>
            $"N={Ranks} H={Heads} KVH={KvHeads} D={HeadDim} cached=[{string.Join(",", Cached)}] new=[{string.Join(",", New)}]";

        /// <summary>Dense attention of every new token, sequence after sequence.</summary>
        public float[] Expected()
        {
            var result = new List<float>();
            for (int s = 0; s < New.Length; s++)
            {
                int len = Cached[s] + New[s];
                var qRows = Rows(Q[s], Heads, Cached[s], New[s]);
                var seq = Enumerable.Repeat(0, len).ToArray();
                result.AddRange(DenseReference.Attention(qRows, seq[..New[s]], Enumerable.Range(Cached[s], New[s]).ToArray(),
                    K[s], V[s], seq, Enumerable.Range(0, len).ToArray(), Heads, KvHeads, HeadDim));
            }
            return result.ToArray();
        }

        public float[] RunPrefill(IAttentionStrategy strategy)
        {
            var placements = Placements();
            var plan = ShardPlan.LoadBalanced(New.Select((n, s) => new SequenceInput(s, n, placements[s])).ToList(), Ranks);
            var group = new InProcessGroup(Ranks);
            var outputs = group.Run(comm =>
            {
                using var backend = new CpuBackend(1);
                var shard = plan.Shards[comm.Rank];
                var caches = FillCaches(backend, comm.Rank);
                var step = new AttentionStep
                {
                    Rank = comm.Rank,
                    QueriesByRank = plan.Shards.Select(s => s.Queries).ToArray(),
                    KeysByRank = plan.Shards.Select(s => s.Keys).ToArray(),
                    Caches = caches,
                    Appends = Enumerable.Range(0, New.Length).Select(s => (s, rows: Enumerable.Range(0, shard.Rows).Where(i => shard.Queries.SeqIds[i] == s).ToArray()))
                        .Where(x => x.rows.Length > 0).Select(x => new KvAppend(x.s, x.rows[0], x.rows.Length)).ToList(),
                };
                using var q = Gather(backend, shard.Queries, Q, Heads);
                using var k = Gather(backend, shard.Queries, K, KvHeads);
                using var v = Gather(backend, shard.Queries, V, KvHeads);
                using var o = strategy.Attend(new AttentionLayer(backend, comm, step, 0, Heads, KvHeads, HeadDim), q, k, v);
                var host = new float[o.Length];
                backend.Download<float>(o, host);
                foreach (var c in caches) c.Dispose();
                return host;
            });
            return plan.Unshard(outputs, Heads * HeadDim);
        }

        /// <summary>One decode step: each sequence's single new token, replicated on all ranks, its KV stored on rank position mod N.</summary>
        public float[] RunDecode()
        {
            var placements = Placements();
            int n = New.Length;
            var queries = new TokenLayout(Enumerable.Range(0, n).ToArray(), Cached.ToArray());
            var keys = Enumerable.Range(0, Ranks).Select(r =>
            {
                var s = new List<int>(); var p = new List<int>();
                for (int i = 0; i < n; i++)
                {
                    foreach (var pos in placements[i].On(r)) { s.Add(i); p.Add(pos); }
                    if (Cached[i] % Ranks == r) { s.Add(i); p.Add(Cached[i]); }
                }
                return new TokenLayout(s.ToArray(), p.ToArray());
            }).ToArray();
            var outputs = new InProcessGroup(Ranks).Run(comm =>
            {
                using var backend = new CpuBackend(1);
                var caches = FillCaches(backend, comm.Rank);
                var step = new AttentionStep
                {
                    Rank = comm.Rank,
                    QueriesByRank = Enumerable.Repeat(queries, Ranks).ToArray(),
                    KeysByRank = keys,
                    Caches = caches,
                    Appends = Enumerable.Range(0, n).Where(i => Cached[i] % Ranks == comm.Rank).Select(i => new KvAppend(i, i, 1)).ToList(),
                };
                using var q = Gather(backend, queries, Q, Heads);
                using var k = Gather(backend, queries, K, KvHeads);
                using var v = Gather(backend, queries, V, KvHeads);
                using var o = new DistributedDecode().Attend(new AttentionLayer(backend, comm, step, 0, Heads, KvHeads, HeadDim), q, k, v);
                var host = new float[o.Length];
                backend.Download<float>(o, host);
                foreach (var c in caches) c.Dispose();
                return host;
            });
            for (int r = 1; r < Ranks; r++) Assert.Equal(outputs[0], outputs[r]); // every rank holds the same merged output
            return outputs[0];
        }

        /// <summary>Each rank's cache holds the K, V of the cached positions placed on it, in position order.</summary>
        private List<SequenceKv> FillCaches(CpuBackend backend, int rank) => Enumerable.Range(0, New.Length).Select(s =>
        {
            var kv = new SequenceKv(backend, 1, KvHeads, HeadDim);
            var mine = Enumerable.Range(0, Cached[s]).Where(p => CachedRank[s][p] == rank).ToArray();
            var layout = new TokenLayout(new int[mine.Length], mine);
            using var k = Gather(backend, layout, K, KvHeads, s);
            using var v = Gather(backend, layout, V, KvHeads, s);
            if (mine.Length > 0)
            {
                var (keys, values) = kv.Claim(0, mine.Length);
                ((IBackend)backend).CopyEach((k, keys), (v, values));
            }
            return kv;
        }).ToList();

        private float[] Rows(float[] all, int heads, int start, int count) => all.AsSpan(start * heads * HeadDim, count * heads * HeadDim).ToArray();
    }
}
