using LongCtx.Cuda.Attention;
using LongCtx.Tensors;

namespace LongCtx.Tests.Cuda;

/// <summary>Token layouts for the layout-decomposition tests: consecutive runs, fused sequences, random mixes.</summary>
internal static class TestLayouts
{
    /// <summary>Runs of 1-3 sequences at random offsets, positions consecutive or with random gaps.</summary>
    public static TokenLayout RandomLayout(Random random)
    {
        var parts = new List<TokenLayout>();
        for (int i = random.Next(1, 4); i > 0; i--)
        {
            int seq = random.Next(3), start = random.Next(0, 12), n = random.Next(1, 12);
            parts.Add(random.Next(4) == 0
                ? new TokenLayout(Enumerable.Repeat(seq, n).ToArray(), Enumerable.Range(0, n).Select(_ => random.Next(0, 24)).ToArray())
                : Sequence(seq, start, n));
        }
        return Concat(parts);
    }

    /// <summary>
    /// Calls <paramref name="check"/> (queries, keys, their blocks, the window, a description with the seed) for each of
    /// 2,000 random layout pairs that decompose into dense blocks — without a window, or with one of 1 to 12 positions
    /// when <paramref name="windowed"/> — and asserts that over 100 did.
    /// </summary>
    public static void ForRandomDecomposableLayouts(Action<TokenLayout, TokenLayout, AttentionBlocks, int?, string> check, bool windowed = false)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        int decomposed = 0;
        for (int trial = 0; trial < 2000; trial++)
        {
            var queries = RandomLayout(random);
            var keys = RandomLayout(random);
            int? window = windowed ? random.Next(1, 13) : null;
            if (AttentionBlocks.Decompose(queries, keys, window) is not { } blocks) continue;
            decomposed++;
            check(queries, keys, blocks, window, $"seed {seed}, trial {trial}, window {window}");
        }
        Assert.True(decomposed > 100, $"seed {seed}: only {decomposed} random layouts decomposed");
    }

    public static TokenLayout Sequence(int seq, int start, int count) =>
        new(Enumerable.Repeat(seq, count).ToArray(), Enumerable.Range(start, count).ToArray());

    public static TokenLayout Concat(IEnumerable<TokenLayout> parts) => TokenLayout.Concat(parts.ToList());
}
