using LongCtx.Approximate;
using LongCtx.Model;

namespace LongCtx.Tests.Approximate;

/// <summary>
/// The balanced split of Star's and APB's document: whole, contiguous blocks of at least one token whose costs (the
/// cost model of <see cref="BlockBalance"/>, restated here) are even to one token, on random problems.
/// </summary>
public class BlockBalanceTests
{
    [Fact]
    public void LengthsCoverTheDocumentAndNoTokenCouldMoveToLowerTheSlowestRank()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int trial = 0; trial < 500; trial++)
        {
            int ranks = random.Next(1, 9), document = ranks + random.Next(0, random.Next(2) == 0 ? 200 : 300_000);
            int anchor = random.Next(0, document / ranks + 2), passing = random.Next(0, 2) * random.Next(0, document / ranks + 2), query = random.Next(0, 65);
            double rho = random.NextDouble() * 40_000;
            string where = $"seed {seed} trial {trial}: D={document} N={ranks} anchor {anchor} passing {passing} query {query} rho {rho:0}";
            var lengths = BlockBalance.Lengths(document, ranks, anchor, passing, query, rho);
            Assert.True(lengths.Length == ranks && lengths.All(b => b >= 1) && lengths.Sum(b => (long)b) == document, $"{where}: [{string.Join(", ", lengths)}]");
            double Cost(int r, long b) => Model(r, b, anchor, passing, query, rho);
            int slowest = Enumerable.Range(0, ranks).MaxBy(r => Cost(r, lengths[r]));
            if (lengths[slowest] == 1) continue; // nothing to move
            for (int r = 0; r < ranks; r++)
                if (r != slowest)
                    Assert.True(Cost(r, lengths[r] + 1) >= Cost(slowest, lengths[slowest]) * (1 - 1e-9),
                        $"{where}: rank {r} could take a token of rank {slowest} ([{string.Join(", ", lengths)}])");
        }
    }

    [Fact]
    public void RanksOfEqualCostGetEqualBlocks()
    {
        // No anchor, no passing, no query: every rank costs the same for the same block.
        var lengths = BlockBalance.Lengths(1003, 4, 0, 0, 0, 1234.5);
        Assert.True(lengths.Max() - lengths.Min() <= 1, $"[{string.Join(", ", lengths)}]");
        Assert.Equal([7], BlockBalance.Lengths(7, 1, 3, 2, 1, 10));
    }

    /// <summary>The figures the documentation quotes: APB at 128K on 4 ranks of Llama 3 8B with its default lengths.</summary>
    [Fact]
    public void ApbAt128KOnFourRanksLowersTheSlowestRankBy15Percent()
    {
        var config = ModelConfig.Preset("llama3-8b");
        int document = 131072 - 64, ranks = 4;
        int anchor = ApproximateDefaults.AnchorTokens(apb: true, document, ranks), passing = ApproximateDefaults.PassingTokens(document, ranks);
        double rho = BlockBalance.PairsPerRow(config);
        Assert.Equal(26624, rho, 3);
        var lengths = BlockBalance.Lengths(document, ranks, anchor, passing, 64, rho);
        Assert.True(lengths[0] > lengths[1] && lengths[1] > lengths[2] && lengths[2] > lengths[3], $"[{string.Join(", ", lengths)}]");
        double Slowest(IReadOnlyList<int> b) => Enumerable.Range(0, ranks).Max(r => Model(r, b[r], anchor, passing, 64, rho));
        double gain = 1 - Slowest(lengths) / Slowest(Enumerable.Repeat(document / ranks, ranks).ToArray());
        Assert.InRange(gain, 0.14, 0.17);
    }

    /// <summary>Rank r's cost for a block of b tokens, in query-key pairs: rows through the linear layers, causal attention over them, passing blocks.</summary>
    private static double Model(int r, long b, int anchor, int passing, int query, double rho)
    {
        double rows = (r == 0 ? 0 : anchor) + b + query;
        return rho * rows + rows * rows / 2 + (double)r * passing * (b + query);
    }
}
