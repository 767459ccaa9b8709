using LongCtx.Sampling;

namespace LongCtx.Tests.Sampling;

/// <summary>
/// TokenPicker (the host's pick, and the GPU kernel's specification) against a plain sort-based reading of the
/// same rules, and the tokens Sampler draws against the probabilities top-k / temperature / top-p give, on fresh
/// random logits.
/// </summary>
public sealed class TokenPickerTests
{
    /// <summary>
    /// The rules read plainly: sort by logit; keep every token at least as large as the k-th; weigh them; keep, from
    /// the largest down, every token at least as large as the one where the weight first reaches ceil(p · total);
    /// lay the kept tokens end to end in vocabulary order and take the one where floor(u · kept) falls.
    /// </summary>
    private static int Reference(float[] logits, TokenDraw draw)
    {
        var numbers = Enumerable.Range(0, logits.Length).Where(i => !float.IsNaN(logits[i])).ToList();
        if (numbers.Count == 0) return logits.Length - 1;
        var keys = logits.Select(TokenPicker.OrderKey).ToArray();
        var byKey = numbers.OrderByDescending(i => keys[i]).ToList();
        int first = byKey.Where(i => keys[i] == keys[byKey[0]]).Min();
        int k = draw.EffectiveTopK;
        if (k == 1) return first;
        uint cut = k > 0 && k < numbers.Count ? keys[byKey[k - 1]] : 1u;
        float max = logits[first];
        var weights = logits.Select((x, i) => keys[i] < cut ? 0ul
            : keys[i] == keys[first] ? (ulong)TokenPicker.WeightOfMax : (ulong)(float.Exp2((x - max) * draw.Log2Scale) * TokenPicker.WeightOfMax)).ToArray();
        ulong total = 0;
        foreach (var w in weights) total += w;
        if (draw.TopP < 1f)
        {
            ulong target = (ulong)Math.Ceiling(draw.TopP * (double)total), sum = 0;
            foreach (int i in byKey)
                if ((sum += weights[i]) >= target) { cut = keys[i]; break; }
            for (int i = 0; i < weights.Length; i++) if (keys[i] < cut) weights[i] = 0;
        }
        ulong kept = 0;
        foreach (var w in weights) kept += w;
        ulong at = Math.Min((ulong)(draw.U * kept), kept - 1), through = 0;
        for (int i = 0; i < weights.Length; i++)
            if ((through += weights[i]) > at) return i;
        throw new InvalidOperationException("the weights do not reach the target");
    }

    private static float[] RandomLogits(Random random, int n)
    {
        // Few distinct values in some rows (ties at every cut), now and then NaN, ±inf and ±0.
        int distinct = random.Next(3) == 0 ? random.Next(1, 12) : 0;
        var logits = new float[n];
        for (int i = 0; i < n; i++)
        {
            logits[i] = distinct > 0 ? random.Next(distinct) / 2f : (float)(random.NextDouble() * 30 - 15);
            if (random.Next(50) == 0) logits[i] = random.Next(4) switch { 0 => float.NaN, 1 => float.NegativeInfinity, 2 => -0f, _ => 0f };
        }
        return logits;
    }

    [Fact]
    public void PicksWhatThePlainReadingOfTheRulesPicks()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int trial = 0; trial < 400; trial++)
        {
            int n = trial == 0 ? 128_256 : random.Next(1, 3000);
            var logits = RandomLogits(random, n);
            var draw = new TokenDraw(random.Next(6) == 0 ? 0f : (float)(0.05 + 3 * random.NextDouble()),
                random.Next(3) == 0 ? 1f : (float)random.NextDouble() * 0.999f + 0.001f,
                random.Next(3) == 0 ? 0 : random.Next(1, n + 5), random.NextDouble());
            Assert.True(Reference(logits, draw) == TokenPicker.Pick(logits, draw), $"seed {seed}, trial {trial}, n {n}, {draw}");
        }
    }

    [Fact]
    public void GreedyAndTopKOneAreTheArgMax()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int trial = 0; trial < 200; trial++)
        {
            var logits = RandomLogits(random, random.Next(1, 500));
            if (trial % 10 == 0) Array.Fill(logits, float.NaN);
            int expected = Sampler.ArgMax(logits);
            Assert.True(expected == TokenPicker.Pick(logits, TokenDraw.Greedy), $"seed {seed}, trial {trial}: greedy");
            Assert.True(expected == TokenPicker.Pick(logits, new TokenDraw(1.3f, 0.5f, 1, random.NextDouble())), $"seed {seed}, trial {trial}: top-k 1");
        }
    }

    /// <summary>
    /// Tokens drawn by a Sampler over many steps land as often as the distribution says: softmax(x / T) over the k
    /// largest, then the fewest most likely reaching p of it, renormalised (Hugging Face's TopK then TopP warpers).
    /// A chi-square statistic over the kept tokens, and no token outside them.
    /// </summary>
    [Theory]
    [InlineData(0.7f, 0.9f, 0)]
    [InlineData(1.0f, 1.0f, 12)]
    [InlineData(1.5f, 0.8f, 20)]
    public void DrawsFollowTheDistribution(float temperature, float topP, int topK)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var logits = Enumerable.Range(0, 30).Select(_ => (float)(random.NextDouble() * 6)).ToArray();
        var order = Enumerable.Range(0, logits.Length).OrderByDescending(i => logits[i]).ToArray();
        int k = topK > 0 ? topK : logits.Length;
        var p = order.Take(k).Select(i => Math.Exp((logits[i] - logits[order[0]]) / temperature)).ToArray();
        double sum = p.Sum(), cumulative = 0;
        int keep = k;
        for (int i = 0; i < k; i++)
            if ((cumulative += p[i] / sum) >= topP) { keep = i + 1; break; }
        double keptMass = p.Take(keep).Sum();
        var expected = new double[logits.Length];
        for (int i = 0; i < keep; i++) expected[order[i]] = p[i] / keptMass;

        const int draws = 200_000;
        var counts = new int[logits.Length];
        var sampler = new Sampler(new SamplingOptions(temperature, topP, topK, seed));
        for (int i = 0; i < draws; i++) counts[sampler.Next(logits)]++;
        double chi2 = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            if (expected[i] == 0) { Assert.True(counts[i] == 0, $"seed {seed}: token {i} is outside the kept set, drawn {counts[i]} times"); continue; }
            double e = expected[i] * draws;
            chi2 += (counts[i] - e) * (counts[i] - e) / e;
        }
        // At most 29 degrees of freedom: the chance of a statistic above 80 is about 1e-6.
        Assert.True(chi2 < 80, $"seed {seed}: chi-square {chi2:F1} over {keep} kept tokens");
    }

    [Fact]
    public void ASeedDrawsTheSameTokensAgain()
    {
        var logits = Enumerable.Range(0, 1000).Select(i => MathF.Sin(i) * 4).ToArray();
        var options = new SamplingOptions(0.9f, 0.95f, 50, Seed: Random.Shared.Next());
        var a = new Sampler(options);
        var b = new Sampler(options);
        var first = Enumerable.Range(0, 64).Select(_ => a.Next(logits)).ToArray();
        Assert.Equal(first, Enumerable.Range(0, 64).Select(_ => b.Next(logits)));
        Assert.True(first.Distinct().Count() > 1, "64 draws at temperature 0.9 over 50 tokens should differ");
    }
}
