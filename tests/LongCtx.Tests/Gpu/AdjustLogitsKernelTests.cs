using LongCtx.Cuda.Ops;
using LongCtx.Cuda.Runtime;
using LongCtx.Sampling;

namespace LongCtx.Tests.Gpu;

/// <summary>
/// Draws with penalties and a logit bias on the GPU (Kernels/adjust_logits.cu on a copy of the logits, then
/// draw_tokens.cu) against the host's: the host applies the same adjustment to the same bf16 values and rounds each
/// adjusted logit to bf16, as the GPU holds it, then picks. Greedy draws give exactly the host's token; sampled ones the
/// host's up to exp2's last bits (as in DrawTokensKernelTests). The logits the draw read stay as they were, so the
/// logprobs computed from them afterwards are the raw ones.
/// </summary>
public class AdjustLogitsKernelTests
{
    [GpuTheory]
    [InlineData(24)]
    public void AdjustedDrawsPickTheHostsTokenOfTheAdjustedRow(int trials)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        using var gpu = new CudaBackend(0);
        int equal = 0, all = 0;
        for (int trial = 0; trial < trials; trial++)
        {
            int n = trial == 0 ? 128_256 : random.Next(2, 30_000), rows = random.Next(1, 41);
            var logits = new float[rows * n];
            for (int i = 0; i < logits.Length; i++) logits[i] = (float)(random.NextDouble() * 8 - 4 + (random.Next(300) == 0 ? 6 * random.NextDouble() : 0));
            var draws = Enumerable.Range(0, rows).Select(r => RandomDraw(random, n, greedy: r % 2 == 0)).ToArray();
            using var t = gpu.Upload<float>(logits, rows, n);
            var values = new float[rows * n];
            gpu.Download<float>(t, values);
            var tokens = new int[rows];
            gpu.DrawTokens(t, draws, tokens);
            var after = new float[rows * n];
            gpu.Download<float>(t, after);
            Assert.True(values.AsSpan().SequenceEqual(after), $"seed {seed}, trial {trial}: the draw changed the logits it read");
            for (int r = 0; r < rows; r++)
            {
                var d = draws[r];
                var adjusted = AdjustedAsBf16(values.AsSpan(r * n, n), d.Adjust!);
                var plain = d with { Adjust = null };
                int host = d.IsGreedy ? Sampler.ArgMax(adjusted) : TokenPicker.Pick(adjusted, plain);
                all++;
                if (tokens[r] == host) { equal++; continue; }
                Assert.False(d.IsGreedy, $"seed {seed}, trial {trial}, row {r} of {rows} x {n}: greedy GPU {tokens[r]}, host {host}");
                const double nudge = 1e-5;
                int[] near = [TokenPicker.Pick(adjusted, plain with { U = Math.Max(0, d.U - nudge) }), TokenPicker.Pick(adjusted, plain with { U = Math.Min(1 - 1e-12, d.U + nudge) }),
                    TokenPicker.Pick(adjusted, plain with { TopP = Math.Max(1e-6f, d.TopP - (float)nudge) }), TokenPicker.Pick(adjusted, plain with { TopP = Math.Min(1f, d.TopP + (float)nudge) })];
                Assert.True(near.Contains(tokens[r]), $"seed {seed}, trial {trial}, row {r}: GPU {tokens[r]}, host {host} (near: {string.Join(", ", near)})");
            }
        }
        Assert.True(equal >= 0.98 * all, $"seed {seed}: only {equal} of {all} draws equal the host's");
    }

    /// <summary>A draw whose adjustment touches many tokens strongly: biases up to ±100 (which decide greedy picks), repeated outputs.</summary>
    private static TokenDraw RandomDraw(Random random, int n, bool greedy)
    {
        var options = new SamplingOptions(greedy ? 0f : (float)(0.3 + random.NextDouble()), TopP: random.Next(2) == 0 ? 1f : 0.9f, TopK: random.Next(3) == 0 ? random.Next(1, 100) : 0, Seed: random.Next())
        {
            PresencePenalty = (float)(random.NextDouble() * 4 - 2),
            FrequencyPenalty = (float)(random.NextDouble() * 4 - 2),
            RepetitionPenalty = (float)(0.5 + random.NextDouble() * 1.5),
            LogitBias = Enumerable.Range(0, random.Next(0, 5)).Select(_ => random.Next(n)).Distinct().ToDictionary(t => t, _ => (float)(random.NextDouble() * 200 - 100)),
        };
        var sampler = new Sampler(options, [.. Enumerable.Range(0, random.Next(0, 300)).Select(_ => random.Next(n))]);
        for (int i = 0, outputs = random.Next(0, 60); i < outputs; i++) sampler.Observe(random.Next(Math.Min(n, 50)));
        return sampler.Draw();
    }

    private static float[] AdjustedAsBf16(ReadOnlySpan<float> row, LogitAdjustment adjust)
    {
        var adjusted = row.ToArray();
        adjust.ApplyTo(adjusted);
        var bits = new ushort[adjusted.Length];
        BFloat16.FromFloat(adjusted, bits);
        BFloat16.ToFloat(bits, adjusted);
        return adjusted;
    }
}
