using LongCtx.Backends;
using LongCtx.Backends.Cpu;
using LongCtx.Tensors;
using LongCtx.Tests.ContextParallel;

namespace LongCtx.Tests.Backends;

/// <summary>
/// The attention rule of the model families on the CPU backend against attention written the obvious way in double:
/// sliding windows (a query sees the last W keys, itself included) over layouts whose tiles are wholly inside, wholly
/// outside and across the window's edge, several sequences, keys out of order; soft-capped scores; and the layouts'
/// own test of whether anything is visible.
/// </summary>
public class WindowedAttentionTests
{
    [Fact]
    public void WindowedAndSoftCappedAttentionEqualsTheDefinition()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        using var b = new CpuBackend(threads: 2);
        for (int trial = 0; trial < 30; trial++)
        {
            int kvHeads = random.Next(1, 3), heads = kvHeads * random.Next(1, 4), d = new[] { 8, 16, 32 }[random.Next(3)];
            var (queries, keys) = RandomLayouts(random);
            int? window = random.Next(4) == 0 ? null : random.Next(1, 90);
            float? cap = random.Next(2) == 0 ? null : 0.5f + random.NextSingle() * 3;
            float scale = 0.3f + random.NextSingle();
            float[] q = Values(random, queries.Count * heads * d), k = Values(random, keys.Count * kvHeads * d), v = Values(random, keys.Count * kvHeads * d);
            var rule = new AttentionRule(scale, window, cap);
            var (output, lse) = Run(b, q, queries, k, v, keys, heads, kvHeads, d, rule);
            var expected = DenseReference.Attention(q, queries.SeqIds, queries.Positions, k, v, keys.SeqIds, keys.Positions, heads, kvHeads, d, window, cap, scale);
            string what = $"seed {seed} trial {trial}: {queries.Count} queries, {keys.Count} keys, {rule}";
            double error = DenseReference.RelativeError(output, expected);
            Assert.True(error < 1e-5, $"{what}: relative error {error:e2}");
            for (int i = 0; i < queries.Count; i++)
            {
                bool sees = Enumerable.Range(0, keys.Count).Any(j => keys.SeqIds[j] == queries.SeqIds[i] && rule.Sees(queries.Positions[i], keys.Positions[j]));
                Assert.True(sees != float.IsNegativeInfinity(lse[i * heads]), $"{what}: query {i} sees {(sees ? "keys" : "none")}, LSE {lse[i * heads]}");
            }
        }
    }

    [Fact]
    public void NothingVisibleKnowsTheWindow()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int trial = 0; trial < 300; trial++)
        {
            var (queries, keys) = RandomLayouts(random);
            int window = random.Next(1, 120);
            bool any = false;
            for (int i = 0; i < queries.Count && !any; i++)
                for (int j = 0; j < keys.Count && !any; j++)
                    any = queries.SeqIds[i] == keys.SeqIds[j] && new AttentionRule(1, window).Sees(queries.Positions[i], keys.Positions[j]);
            Assert.True(any != TokenLayout.NothingVisible(queries, keys, window), $"seed {seed} trial {trial}, window {window}");
        }
    }

    /// <summary>A query block and a key block of one to three sequences, positions in runs with gaps (ring-step blocks, caches), some shuffled.</summary>
    internal static (TokenLayout Queries, TokenLayout Keys) RandomLayouts(Random random)
    {
        TokenLayout Runs(int sequences)
        {
            var seq = new List<int>();
            var pos = new List<int>();
            for (int run = random.Next(1, 5); run > 0; run--)
            {
                int s = random.Next(sequences), start = random.Next(0, 300), n = random.Next(1, 90);
                for (int p = start; p < start + n; p++) { seq.Add(s); pos.Add(p); }
            }
            if (random.Next(4) == 0)
            {
                var order = Enumerable.Range(0, seq.Count).OrderBy(_ => random.Next()).ToArray();
                return new TokenLayout(order.Select(i => seq[i]).ToArray(), order.Select(i => pos[i]).ToArray());
            }
            return new TokenLayout(seq.ToArray(), pos.ToArray());
        }
        int sequences = random.Next(1, 4);
        return (Runs(sequences), Runs(sequences));
    }

    private static (float[] Output, float[] Lse) Run(CpuBackend b, float[] q, TokenLayout queries, float[] k, float[] v, TokenLayout keys, int heads, int kvHeads, int d, AttentionRule rule)
    {
        using var qt = b.Upload<float>(q, queries.Count, heads, d);
        using var kt = b.Upload<float>(k, keys.Count, kvHeads, d);
        using var vt = b.Upload<float>(v, keys.Count, kvHeads, d);
        return Run(b, qt, queries, kt, vt, keys, rule);
    }

    /// <summary>The attention's output [queries, heads, d] and LSE [queries, heads], downloaded.</summary>
    internal static (float[] Output, float[] Lse) Run(CpuBackend b, Tensor q, TokenLayout queries, Tensor k, Tensor v, TokenLayout keys, AttentionRule rule)
    {
        using var o = b.Allocate(DType.F32, q.Shape);
        using var lse = b.Allocate(DType.F32, q.Shape[0], q.Shape[1]);
        b.Attention(q, queries, k, v, keys, rule, o, lse);
        var output = new float[o.Length];
        var l = new float[lse.Length];
        b.Download<float>(o, output);
        b.Download<float>(lse, l);
        return (output, l);
    }

    internal static float[] Values(Random random, int n) => Enumerable.Range(0, n).Select(_ => random.NextSingle() * 4 - 2).ToArray();
}
