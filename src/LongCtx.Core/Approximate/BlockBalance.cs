using LongCtx.Model;

namespace LongCtx.Approximate;

/// <summary>
/// Document blocks of unequal lengths that give every rank of a Star or APB context phase the same work. The papers
/// split the document evenly, which leaves rank 0 the least to do — it has no anchor copy and, under APB, no passing
/// block — and the last rank the most; the prefill takes as long as its slowest rank. Rank r's work for a block of b
/// tokens, counted in query-key pairs of attention (4·heads·headDim FLOPs a layer):
///
///   rows  R    = a_r + b + q            a_r: the anchor copy (0 on rank 0), q: the embedded query (APB)
///   cost(b)    = ρ·R + R²/2 + r·l_p·(b + q)
///                ρ·R: the linear layers (ρ = a row's weights·2 over 4·heads·headDim, ~26,600 for Llama 3 8B);
///                R²/2: causal attention over its own rows; r·l_p·(b + q): the passing blocks of the r ranks before it
///
/// The lengths are those at which every rank's cost is the same T (T by bisection). At 128K on 4 ranks with APB's
/// default lengths this moves the blocks from 32,752 each to ~41.6K / 31.5K / 29.7K / 28.1K and the slowest rank's cost
/// down by 15%; Star, whose anchor is a whole block, gives rank 0 ~57K and the others ~24.6K (19% less). Rank 0 then
/// keeps the most KV.
/// </summary>
public static class BlockBalance
{
    /// <summary>ρ: the FLOPs of one row through a layer's linear layers, in query-key pairs of attention.</summary>
    public static double PairsPerRow(ModelConfig c)
    {
        double linear = (double)c.HiddenSize * c.QDim * 2 + (double)c.HiddenSize * c.KvDim * 2 + 3.0 * c.HiddenSize * c.IntermediateSize;
        return 2 * linear / (4.0 * c.QDim);
    }

    /// <summary>Block lengths (each at least 1, summing to <paramref name="documentTokens"/>) that even out the ranks' costs.</summary>
    public static int[] Lengths(int documentTokens, int ranks, int anchorTokens, int passingTokens, int embeddedQuery, double pairsPerRow)
    {
        if (documentTokens < ranks) throw new ArgumentException($"{documentTokens} tokens cannot fill {ranks} blocks");
        var rank = Enumerable.Range(0, ranks).Select(r => new RankCost(r, r == 0 ? 0 : anchorTokens, passingTokens, embeddedQuery, pairsPerRow)).ToArray();
        // The smallest T at which the lengths cover the document: every rank's cost at D bounds it from above.
        double low = 0, high = rank.Max(c => c.Of(documentTokens));
        for (int i = 0; i < 100 && high - low > 1e-9 * high; i++)
        {
            double mid = (low + high) / 2;
            if (rank.Sum(c => (long)c.LengthWithin(mid)) >= documentTokens) high = mid;
            else low = mid;
        }
        var lengths = rank.Select(c => c.LengthWithin(high)).ToArray();
        // Lengths jump by whole tokens, so the sum may pass D by a few: take them from the costliest ranks.
        for (long excess = lengths.Sum(b => (long)b) - documentTokens; excess > 0; excess--)
        {
            int costliest = Enumerable.Range(0, ranks).Where(r => lengths[r] > 1).MaxBy(r => rank[r].Of(lengths[r]));
            lengths[costliest]--;
        }
        return lengths;
    }

    /// <summary>One rank's cost as a function of its block length b.</summary>
    private readonly record struct RankCost(int Rank, int Anchor, int Passing, int Query, double Rho)
    {
        public double Of(long b)
        {
            double rows = Anchor + b + Query;
            return Rho * rows + rows * rows / 2 + (double)Rank * Passing * (b + Query);
        }

        /// <summary>The longest block (at least 1) whose cost is at most t: the root of R²/2 + (ρ + r·l_p)·R − r·l_p·a_r = t.</summary>
        public int LengthWithin(double t)
        {
            double slope = Rho + (double)Rank * Passing;
            double rows = -slope + Math.Sqrt(slope * slope + 2 * (t + (double)Rank * Passing * Anchor));
            long b = (long)Math.Floor(rows) - Anchor - Query;
            // Floating point may put the root a hair to either side of t.
            while (b > 1 && Of(b) > t) b--;
            while (Of(b + 1) <= t) b++;
            return (int)Math.Clamp(b, 1, int.MaxValue);
        }
    }
}
