using LongCtx.Cuda.Ops;
using LongCtx.Sampling;

namespace LongCtx.Tests.Gpu;

/// <summary>
/// The GPU's token per row of logits (Kernels/draw_tokens.cu, behind InferenceEngine.DecodeTokens) against the host's
/// pick on the same values read back, for fresh random bf16 rows up to 128,256 entries and batches past one
/// launch's 32 rows: greedy draws give exactly Sampler.ArgMax's index, with many ties, ±0, denormals (which a
/// fast-math comparison would flush to 0), infinities, NaN here and there, rows of NaN only and rows whose largest
/// value is −inf; draws at a temperature with top-k and top-p give TokenPicker.Pick's token.
/// </summary>
public class DrawTokensKernelTests
{
    [GpuTheory]
    [InlineData(30)]
    public void GreedyDrawsPickTheSamplersArgMax(int trials)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        using var gpu = new CudaBackend(0);
        for (int trial = 0; trial < trials; trial++)
        {
            int n = trial switch { 0 => 128_256, 1 => 1, _ => random.Next(2, 20_000) }, rows = random.Next(1, 41);
            int distinct = random.Next(3) == 0 ? random.Next(1, 6) : 0;
            var logits = new float[rows * n];
            for (int r = 0; r < rows; r++)
            {
                int kind = random.Next(8); // 0: NaN only, 1: −inf and NaN only, else numbers with specials sprinkled in
                for (int i = 0; i < n; i++)
                {
                    float x = distinct > 0 ? random.Next(distinct) - 1 : (float)(random.NextDouble() * 20 - 10);
                    if (random.Next(40) == 0)
                        x = random.Next(6) switch { 0 => float.NaN, 1 => float.NegativeInfinity, 2 => float.PositiveInfinity, 3 => -0f, 4 => 1e-40f, _ => -1e-40f };
                    if (kind == 0) x = float.NaN;
                    if (kind == 1) x = random.Next(2) == 0 ? float.NaN : float.NegativeInfinity;
                    logits[r * n + i] = x;
                }
            }
            var (values, tokens) = Draw(gpu, logits, rows, n, Enumerable.Repeat(TokenDraw.Greedy, rows).ToArray());
            for (int r = 0; r < rows; r++)
                Assert.True(tokens[r] == Sampler.ArgMax(values.AsSpan(r * n, n)),
                    $"seed {seed}, trial {trial}, row {r} of {rows} x {n}: GPU {tokens[r]}, sampler {Sampler.ArgMax(values.AsSpan(r * n, n))}");
        }
    }

    /// <summary>
    /// exp2 on the GPU and the host may differ in the last bits, which moves a boundary by ~1e-7 of the weight: a
    /// token that differs must be the host's pick for u or top-p moved by 1e-5, and nearly all must be equal.
    /// </summary>
    [GpuTheory]
    [InlineData(30)]
    public void SampledDrawsPickTheHostsToken(int trials)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        using var gpu = new CudaBackend(0);
        int equal = 0, all = 0;
        for (int trial = 0; trial < trials; trial++)
        {
            int n = trial == 0 ? 128_256 : random.Next(2, 40_000), rows = random.Next(1, 41);
            // Logits spread like a model's (a few strong candidates over a broad floor), some rows with few values (ties).
            int distinct = random.Next(4) == 0 ? random.Next(2, 8) : 0;
            var logits = new float[rows * n];
            for (int i = 0; i < logits.Length; i++)
            {
                logits[i] = distinct > 0 ? random.Next(distinct) : (float)(random.NextDouble() * 8 - 4 + (random.Next(200) == 0 ? 8 * random.NextDouble() : 0));
                if (random.Next(500) == 0) logits[i] = random.Next(2) == 0 ? float.NaN : float.NegativeInfinity;
            }
            var draws = Enumerable.Range(0, rows).Select(_ => new TokenDraw((float)(0.2 + 2 * random.NextDouble()),
                random.Next(3) == 0 ? 1f : (float)(0.05 + 0.95 * random.NextDouble()), random.Next(3) == 0 ? 0 : random.Next(1, 2000), random.NextDouble())).ToArray();
            var (values, tokens) = Draw(gpu, logits, rows, n, draws);
            for (int r = 0; r < rows; r++)
            {
                var row = values.AsSpan(r * n, n);
                var d = draws[r];
                int host = TokenPicker.Pick(row, d);
                all++;
                if (tokens[r] == host) { equal++; continue; }
                const double nudge = 1e-5;
                int[] near = [TokenPicker.Pick(row, d with { U = Math.Max(0, d.U - nudge) }), TokenPicker.Pick(row, d with { U = Math.Min(1 - 1e-12, d.U + nudge) }),
                    TokenPicker.Pick(row, d with { TopP = Math.Max(1e-6f, d.TopP - (float)nudge) }), TokenPicker.Pick(row, d with { TopP = Math.Min(1f, d.TopP + (float)nudge) })];
                Assert.True(near.Contains(tokens[r]), $"seed {seed}, trial {trial}, row {r} of {rows} x {n}, {d}: GPU {tokens[r]}, host {host} (near: {string.Join(", ", near)})");
            }
        }
        Assert.True(equal >= 0.98 * all, $"seed {seed}: only {equal} of {all} draws equal the host's");
    }

    private static (float[] Values, int[] Tokens) Draw(CudaBackend gpu, float[] logits, int rows, int n, TokenDraw[] draws)
    {
        using var t = gpu.Upload<float>(logits, rows, n);
        var values = new float[rows * n];
        gpu.Download<float>(t, values); // as bf16 holds them
        var tokens = new int[rows];
        gpu.DrawTokens(t, draws, tokens);
        return (values, tokens);
    }
}
