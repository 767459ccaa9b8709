using LongCtx.Backends.Cpu;
using LongCtx.Tensors;
using LongCtx.Tests.ContextParallel;

namespace LongCtx.Tests.Backends;

/// <summary>
/// The CPU backend's scratch tensors and its fused residual projection: LinearAccumulate must be Linear
/// followed by Add (the replica's o and down projections switch between the two on tensor parallelism).
/// </summary>
public class CpuBackendTests
{
    // Shapes around the kernel's tiling: 4-token and 2-weight-row steps with remainders, more than one
    // 64-token and 32-row block, K with a scalar tail after the vectors.
    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(7, 19, 37)]
    [InlineData(70, 64, 33)]
    [InlineData(130, 100, 96)]
    public void LinearAccumulateIsLinearThenAdd(int tokens, int inFeatures, int outFeatures)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        float[] x = RandomValues(random, tokens * inFeatures), w = RandomValues(random, outFeatures * inFeatures), y = RandomValues(random, tokens * outFeatures);
        using var b = new CpuBackend(threads: 4);
        using var xt = b.Upload<float>(x, tokens, inFeatures);
        using var wt = b.Upload<float>(w, outFeatures, inFeatures);

        using var accumulated = b.Upload<float>(y, tokens, outFeatures);
        b.LinearAccumulate(xt, wt, accumulated);

        using var expected = b.Upload<float>(y, tokens, outFeatures);
        using var product = b.Allocate(DType.F32, tokens, outFeatures);
        b.Linear(xt, wt, null, product);
        b.Add(expected, product);

        double error = DenseReference.RelativeError(Read(b, accumulated), Read(b, expected));
        Assert.True(error < 1e-5, $"seed {seed}, [{tokens}, {inFeatures}] x [{outFeatures}, {inFeatures}]: LinearAccumulate vs Linear + Add {error:e2}");
    }

    [Theory]
    [InlineData(DType.F32, new[] { 3, 5, 7 })]
    [InlineData(DType.I32, new[] { 4 })]
    [InlineData(DType.F32, new[] { 0, 16 })]
    public void ScratchHasTheShapeAndTypeAskedFor(DType dtype, int[] shape)
    {
        using var b = new CpuBackend(threads: 1);
        using var t = b.Scratch(dtype, shape);
        Assert.Equal(dtype, t.DType);
        Assert.Equal(shape, t.Shape);
        Assert.Equal(shape.Aggregate(1L, (n, d) => n * d), t.Length);
    }

    private static float[] RandomValues(Random random, int n) => Enumerable.Range(0, n).Select(_ => random.NextSingle() * 4 - 2).ToArray();

    private static float[] Read(CpuBackend b, Tensor t)
    {
        var values = new float[t.Length];
        b.Download<float>(t, values);
        return values;
    }
}
