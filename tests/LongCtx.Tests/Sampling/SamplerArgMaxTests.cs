using LongCtx.Sampling;

namespace LongCtx.Tests.Sampling;

/// <summary>Sampler.ArgMax (SIMD) against the first-index-of-maximum loop it replaced, on fresh random logits.</summary>
public sealed class SamplerArgMaxTests
{
    private static int Reference(float[] logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(33)]
    [InlineData(128256)]
    public void MatchesTheScalarLoopIncludingTies(int length)
    {
        var random = new Random();
        for (int trial = 0; trial < 20; trial++)
        {
            // Few distinct values, so the maximum is often tied and the first index must win.
            var logits = Enumerable.Range(0, length).Select(_ => (float)random.Next(-50, 50) / 4).ToArray();
            Assert.Equal(Reference(logits), Sampler.ArgMax(logits));
        }
    }

    [Fact]
    public void NanNeverWins()
    {
        var logits = new float[100];
        logits[3] = float.NaN;
        logits[50] = 2f;
        logits[70] = 2f;
        Assert.Equal(50, Sampler.ArgMax(logits));
        logits[0] = float.NaN;
        Assert.Equal(50, Sampler.ArgMax(logits));
    }

    [Fact]
    public void NegativeAndPositiveZeroTieToTheFirst()
    {
        var logits = Enumerable.Repeat(-1f, 40).ToArray();
        logits[9] = -0f;
        logits[20] = 0f;
        Assert.Equal(9, Sampler.ArgMax(logits));
    }
}
