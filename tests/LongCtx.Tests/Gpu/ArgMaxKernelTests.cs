using LongCtx.Cuda;
using LongCtx.Engine;

namespace LongCtx.Tests.Gpu;

/// <summary>
/// The GPU's greedy token per row of logits (Kernels/elementwise.cu's argmax_rows, behind InferenceEngine.DecodeGreedy)
/// against Sampler.ArgMax on the same values read back: the same index, for fresh random bf16 rows with many ties, ±0,
/// denormals (which a fast-math comparison would flush to 0), infinities, NaN here and there, rows of NaN only and
/// rows whose largest value is −inf, from 1 to 128,256 entries.
/// </summary>
public class ArgMaxKernelTests
{
    [GpuTheory]
    [InlineData(30)]
    public void TheGpuPicksTheTokenTheSamplerPicks(int trials)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        using var gpu = new CudaBackend(0);
        for (int trial = 0; trial < trials; trial++)
        {
            int n = trial switch { 0 => 128_256, 1 => 1, _ => random.Next(2, 20_000) }, rows = random.Next(1, 17);
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
            using var t = gpu.Upload<float>(logits, rows, n);
            var values = new float[rows * n];
            gpu.Download<float>(t, values); // as bf16 holds them
            var tokens = new int[rows];
            gpu.ArgMaxRows(t, tokens);
            for (int r = 0; r < rows; r++)
                Assert.True(tokens[r] == Sampler.ArgMax(values.AsSpan(r * n, n)),
                    $"seed {seed}, trial {trial}, row {r} of {rows} x {n}: GPU {tokens[r]}, sampler {Sampler.ArgMax(values.AsSpan(r * n, n))}");
        }
    }
}
