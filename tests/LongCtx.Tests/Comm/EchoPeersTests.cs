using LongCtx.Backends.Cpu;
using LongCtx.Comm;
using LongCtx.ContextParallel;
using LongCtx.Engine;
using LongCtx.Model;
using LongCtx.Tensors;

namespace LongCtx.Tests.Comm;

/// <summary>
/// A rank running alone among echoing peers (`bench --one-rank-of N`) does rank 0's work of an N-rank run: when every
/// rank of a real ring holds the same K and V rows, pass-KV's rank 0 computes exactly what the echoed rank computes,
/// and an echoed rank r's cache holds rank r's share of an engine run.
/// </summary>
public class EchoPeersTests
{
    [Fact]
    public void PassKvRankZeroEqualsARealRingWhoseRanksHoldTheSameRows()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int trial = 0; trial < 8; trial++)
        {
            int ranks = random.Next(2, 9), kvHeads = random.Next(1, 4), heads = kvHeads * random.Next(1, 5), d = 16;
            int tokens = 2 * ranks * random.Next(1, 6); // equal shards, so every ring block has rank 0's shape
            var plan = ShardPlan.LoadBalanced([new SequenceInput(0, tokens, new KvPlacement(ranks))], ranks);
            int rows = plan.Shards[0].Rows;
            float[] Fill(int n) => Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            float[] q = Fill(rows * heads * d), k = Fill(rows * kvHeads * d), v = Fill(rows * kvHeads * d);

            float[] RankZero(ICommunicator comm)
            {
                using var backend = new CpuBackend(1);
                using var cache = new SequenceKv(backend, 1, kvHeads, d);
                var step = new AttentionStep
                {
                    Rank = comm.Rank,
                    QueriesByRank = plan.Shards.Select(s => s.Queries).ToArray(),
                    KeysByRank = plan.Shards.Select(s => s.Keys).ToArray(),
                    Caches = [cache],
                    Appends = [new KvAppend(0, 0, rows)],
                };
                using var qt = backend.Upload<float>(q, rows, heads, d);
                using var kt = backend.Upload<float>(k, rows, kvHeads, d);
                using var vt = backend.Upload<float>(v, rows, kvHeads, d);
                using var o = new RingPassKv().Attend(new AttentionLayer(backend, comm, step, 0, heads, kvHeads, d), qt, kt, vt);
                var host = new float[o.Length];
                backend.Download<float>(o, host);
                return host;
            }

            var real = new InProcessGroup(ranks).Run(RankZero)[0];
            using var echoBackend = new CpuBackend(1);
            var echoed = RankZero(new EchoPeers(0, ranks, echoBackend));
            Assert.True(real.SequenceEqual(echoed), $"seed {seed} trial {trial}: N={ranks} H={heads} KVH={kvHeads} T={tokens}");
        }
    }

    [Fact]
    public void PeersAnswerWithThisRanksData()
    {
        var random = new Random(Random.Shared.Next());
        using var backend = new CpuBackend(1);
        var peers = new EchoPeers(1, 3, backend);
        float[] data = Enumerable.Range(0, 8).Select(_ => random.NextSingle()).ToArray();
        using var send = backend.Upload<float>(data, 2, 4);

        using var gathered = backend.Allocate(DType.F32, 6, 4);
        peers.AllGather(send, gathered);
        Assert.Equal([.. data, .. data, .. data], Host(backend, gathered));

        using var received = backend.Allocate(DType.F32, 2, 4);
        peers.SendReceive([send], 2, [received], 0).Wait();
        Assert.Equal(data, Host(backend, received));

        using var summed = backend.Upload<float>(data, 2, 4);
        peers.AllReduceSum(summed); // the peers add zeros
        Assert.Equal(data, Host(backend, summed));

        Assert.Throws<ArgumentOutOfRangeException>(() => new EchoPeers(3, 3, backend));
    }

    [Fact]
    public void EchoedRankHoldsItsShareOfTheCache()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var config = ModelConfig.Preset("tiny") with { NumLayers = 2 };
        using var weights = ModelWeights.Dummy(config, seed, DType.F32);
        int ranks = random.Next(2, 6), timed = random.Next(ranks);
        using var real = new InferenceEngine(config, new CpuRankGroup(config, weights, ranks));
        using var echoed = new InferenceEngine(config, ProcessRankGroup.EchoedRank(config, weights, new CpuBackend(), ranks, timed, "cpu x1"));
        var prompt = Enumerable.Range(0, random.Next(40, 200)).Select(_ => random.Next(config.VocabSize)).ToArray();
        Sequence a = real.NewSequence(), b = echoed.NewSequence();
        real.Prefill([(a, prompt)], StrategyNames.PassKv);
        var logits = echoed.Prefill([(b, prompt)], StrategyNames.PassKv).Logits[0];
        Assert.All(logits, x => Assert.True(float.IsFinite(x)));
        for (int step = 0; step < ranks + 1; step++)
        {
            real.Decode([(a, 1)]);
            echoed.Decode([(b, 1)]);
        }
        Assert.True(real.KvBytesPerRank()[timed] == Assert.Single(echoed.KvBytesPerRank()), $"seed {seed}: rank {timed} of {ranks}");
        Assert.Equal(a.Placement.On(timed), b.Placement.On(timed));
    }

    private static float[] Host(CpuBackend backend, Tensor t)
    {
        var host = new float[t.Length];
        backend.Download<float>(t, host);
        return host;
    }
}
