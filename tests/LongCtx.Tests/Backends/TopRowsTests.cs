using LongCtx.Backends;

namespace LongCtx.Tests.Backends;

/// <summary>
/// The compressor's per-head selection against sorting: the same rows for random scores, with many ties
/// (scores drawn from a few values), infinities and NaN (ranked as −inf), and every count from none to all.
/// </summary>
public class TopRowsTests
{
    [Fact]
    public void SelectionKeepsTheRowsSortingWould()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int trial = 0; trial < 300; trial++)
        {
            int n = random.Next(1, 2000), heads = random.Next(1, 5), distinct = random.Next(1, 4) == 1 ? random.Next(1, 6) : 0;
            var scores = new float[n * heads];
            for (int i = 0; i < scores.Length; i++)
            {
                scores[i] = distinct > 0 ? random.Next(distinct) : (float)(random.NextDouble() * 2 - 1);
                if (random.Next(50) == 0) scores[i] = random.Next(3) switch { 0 => float.NaN, 1 => float.NegativeInfinity, _ => float.PositiveInfinity };
            }
            int count = random.Next(0, n + 1);
            for (int h = 0; h < heads; h++)
                Assert.True(Sorted(scores, n, heads, h, count).SequenceEqual(HostSelection.TopRows(scores, n, heads, h, count)),
                    $"seed {seed} trial {trial}: n={n} heads={heads} h={h} count={count} distinct={distinct}");
        }
    }

    /// <summary>By score descending (NaN lowest), earlier rows first among equals; the first count, ascending.</summary>
    private static int[] Sorted(float[] scores, int n, int heads, int h, int count)
    {
        float Score(int i) => float.IsNaN(scores[i * heads + h]) ? float.NegativeInfinity : scores[i * heads + h];
        return Enumerable.Range(0, n).OrderByDescending(Score).ThenBy(i => i).Take(count).Order().ToArray();
    }
}
