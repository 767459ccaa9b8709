using LongCtx.Backends;
using LongCtx.Backends.Cpu;
using LongCtx.Tensors;

namespace LongCtx.Tests.ContextParallel;

/// <summary>
/// The one-pass merge of a distributed decode step: causal attention over keys cut into N contiguous parts, each
/// part's output and LSE laid out as an all-gather leaves them and merged by <see cref="LongCtx.Backends.IBackend.MergeAttentionParts"/>,
/// equals attention over all keys on fresh random problems — parts that a row cannot see (LSE −inf) included.
/// </summary>
public class MergeAttentionPartsTests
{
    [Fact]
    public void MergedPartsEqualAttentionOverAllKeys()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        using var b = new CpuBackend(1);
        for (int trial = 0; trial < 20; trial++)
        {
            int kvHeads = random.Next(1, 3), heads = kvHeads * random.Next(1, 4), d = 8 * random.Next(1, 3);
            int keys = random.Next(4, 80), queries = random.Next(1, 6), parts = random.Next(1, Math.Min(keys, 6) + 1);
            string where = $"seed {seed} trial {trial}: {queries} queries, {keys} keys in {parts} parts, H={heads} KVH={kvHeads} D={d}";
            // Queries at random positions among the keys: early parts see some, later parts may see none.
            var queryLayout = new TokenLayout(new int[queries], Enumerable.Range(0, queries).Select(_ => random.Next(keys)).ToArray());
            var keyLayout = new TokenLayout(new int[keys], Enumerable.Range(0, keys).ToArray());
            float[] Fill(int n) => Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            using var q = b.Upload<float>(Fill(queries * heads * d), queries, heads, d);
            using var k = b.Upload<float>(Fill(keys * kvHeads * d), keys, kvHeads, d);
            using var v = b.Upload<float>(Fill(keys * kvHeads * d), keys, kvHeads, d);
            float scale = 1f / MathF.Sqrt(d);
            using var expected = b.Allocate(DType.F32, queries, heads, d);
            using var expectedLse = b.Allocate(DType.F32, queries, heads);
            b.Attention(q, queryLayout, k, v, keyLayout, new AttentionRule(scale), expected, expectedLse);

            var cuts = Enumerable.Range(1, keys - 1).OrderBy(_ => random.Next()).Take(parts - 1).Order().Prepend(0).Append(keys).ToArray();
            using var gathered = b.Allocate(DType.F32, parts * queries, heads, d);
            using var gatheredLse = b.Allocate(DType.F32, parts * queries, heads);
            for (int j = 0; j < parts; j++)
                b.Attention(q, queryLayout, k.SliceRows(cuts[j], cuts[j + 1] - cuts[j]), v.SliceRows(cuts[j], cuts[j + 1] - cuts[j]),
                    keyLayout.Slice(cuts[j], cuts[j + 1] - cuts[j]), new AttentionRule(scale), gathered.SliceRows(j * queries, queries), gatheredLse.SliceRows(j * queries, queries));
            using var merged = b.Allocate(DType.F32, queries, heads, d);
            b.MergeAttentionParts(gathered, gatheredLse, merged);

            var (want, got) = (new float[expected.Length], new float[merged.Length]);
            b.Download<float>(expected, want);
            b.Download<float>(merged, got);
            double error = DenseReference.RelativeError(got, want);
            Assert.True(error < 1e-5, $"{where}: relative error {error:e2}");
        }
    }
}
