using LongCtx.Backends.Cpu;
using LongCtx.Tensors;

namespace LongCtx.Tests.Backends;

/// <summary>
/// The CPU backend's operations for Gemma and Qwen3 against their definitions in double: RMSNorm with Gemma's (1 + w)
/// weights (and in place, as the per-head q/k norms run), GELU-tanh gating, the final logits' soft cap and the
/// embedding scale.
/// </summary>
public class FamilyOpsTests
{
    [Theory]
    [InlineData(0f)]
    [InlineData(1f)]
    public void RmsNormWithAWeightOffsetScalesByOffsetPlusWeight(float offset)
    {
        var random = new Random(Random.Shared.Next());
        int rows = 5, n = 37;
        float[] x = Values(random, rows * n), w = Values(random, n);
        using var b = new CpuBackend(threads: 2);
        using var xt = b.Upload<float>(x, rows, n);
        using var wt = b.Upload<float>(w, n);
        b.RmsNorm(xt, wt, 1e-6f, xt, offset); // in place
        var y = Read(b, xt);
        for (int r = 0; r < rows; r++)
        {
            double ss = 0;
            for (int i = 0; i < n; i++) ss += (double)x[r * n + i] * x[r * n + i];
            double inv = 1 / Math.Sqrt(ss / n + 1e-6);
            for (int i = 0; i < n; i++)
                Assert.Equal(x[r * n + i] * inv * (offset + w[i]), y[r * n + i], 1e-5);
        }
    }

    [Fact]
    public void GeluTanhGluSoftCapAndScaleFollowTheirDefinitions()
    {
        var random = new Random(Random.Shared.Next());
        int n = 1000;
        float[] g = Values(random, n, 6), u = Values(random, n, 2);
        using var b = new CpuBackend(threads: 2);
        using var gt = b.Upload<float>(g, n);
        using var ut = b.Upload<float>(u, n);
        b.GeluTanhGlu(gt, ut, gt);
        var glu = Read(b, gt);
        for (int i = 0; i < n; i++)
        {
            double x = g[i], gelu = 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
            Assert.Equal(gelu * u[i], glu[i], 1e-5);
        }

        using var capped = b.Upload<float>(g, n);
        b.SoftCap(capped, 2.5f);
        var c = Read(b, capped);
        for (int i = 0; i < n; i++) Assert.Equal(2.5 * Math.Tanh(g[i] / 2.5), c[i], 1e-6);

        using var scaled = b.Upload<float>(g, n);
        b.Scale(scaled, 8f);
        Assert.Equal(g.Select(x => x * 8f), Read(b, scaled));
    }

    private static float[] Values(Random random, int n, float range = 4) => Enumerable.Range(0, n).Select(_ => (random.NextSingle() - 0.5f) * range).ToArray();

    private static float[] Read(CpuBackend b, Tensor t)
    {
        var values = new float[t.Length];
        b.Download<float>(t, values);
        return values;
    }
}
