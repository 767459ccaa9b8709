using LongCtx.Cuda.Ops;
using LongCtx.Sampling;

namespace LongCtx.Tests.Gpu;

/// <summary>
/// The GPU's logprobs per row of logits (Kernels/token_logprobs.cu, behind CudaBackend.Logprobs) against the host's
/// Logprobs.Of on the same values read back, for fresh random bf16 rows up to 128,256 entries: the same most likely
/// ids in the same order, with rows of a few values (many ties, ±0 among them: the lower id goes first) and −inf
/// here and there, and logprobs equal to rounding (the host sums exps in float slices, the GPU in double).
/// </summary>
public class LogprobsKernelTests
{
    [GpuTheory]
    [InlineData(30)]
    public void LogprobsMatchTheHosts(int trials)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        using var gpu = new CudaBackend(0);
        int[] tops = [0, 1, 5, Logprobs.MaxTop];
        for (int trial = 0; trial < trials; trial++)
        {
            int n = trial switch { 0 => 128_256, 1 => 1, _ => random.Next(2, 128_257) }, rows = random.Next(1, 41);
            int top = Math.Min(tops[random.Next(tops.Length)], n);
            var logits = new float[rows * n];
            for (int r = 0; r < rows; r++)
            {
                int distinct = random.Next(3) == 0 ? random.Next(1, 6) : 0;
                float scale = random.Next(3) switch { 0 => 2, 1 => 20, _ => 200 };
                for (int i = 0; i < n; i++)
                {
                    float x = distinct > 0 ? random.Next(distinct) - 1 : (float)((random.NextDouble() - 0.5) * scale);
                    if (x == 0 && random.Next(2) == 0) x = -0f;
                    if (random.Next(100) == 0) x = float.NegativeInfinity;
                    logits[r * n + i] = x;
                }
            }
            var tokens = Enumerable.Range(0, rows).Select(_ => random.Next(n)).ToArray();
            using var t = gpu.Upload<float>(logits, rows, n);
            var values = new float[rows * n];
            gpu.Download<float>(t, values); // as bf16 holds them
            var gpuLogprobs = gpu.Logprobs(t, tokens, top);
            for (int r = 0; r < rows; r++)
            {
                var host = Logprobs.Of(values.AsSpan(r * n, n), tokens[r], top);
                var device = gpuLogprobs[r];
                string where = $"seed {seed}, trial {trial}, row {r} of {rows} x {n}, top {top}";
                Assert.True(Agree(device.Logprob, host.Logprob), $"{where}: token {tokens[r]}'s logprob GPU {device.Logprob}, host {host.Logprob}");
                Assert.True(device.Top.Select(e => e.Token).SequenceEqual(host.Top.Select(e => e.Token)),
                    $"{where}: GPU ids {string.Join(", ", device.Top.Select(e => e.Token))}, host {string.Join(", ", host.Top.Select(e => e.Token))}");
                for (int j = 0; j < top; j++)
                    Assert.True(Agree(device.Top[j].Logprob, host.Top[j].Logprob), $"{where}: the {j}th's logprob GPU {device.Top[j].Logprob}, host {host.Top[j].Logprob}");
            }
        }
    }

    // Equal to rounding; −inf where the host has it, and NaN where a row of −inf gives the host NaN.
    private static bool Agree(float gpu, float host) =>
        gpu == host || (float.IsNaN(gpu) && float.IsNaN(host)) || Math.Abs(gpu - host) <= 1e-4 + 1e-5 * Math.Abs(host);
}
