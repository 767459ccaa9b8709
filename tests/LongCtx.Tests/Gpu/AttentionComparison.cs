namespace LongCtx.Tests.Gpu;

/// <summary>Inputs and error measures shared by the GPU attention tests that compare against the CPU backend.</summary>
internal static class AttentionComparison
{
    /// <summary>Relative error over the rows that see keys; a row that sees none must be −inf in both.</summary>
    public static double LseError(float[] actual, float[] expected, string where)
    {
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            if (float.IsNegativeInfinity(expected[i]))
            {
                Assert.True(float.IsNegativeInfinity(actual[i]), $"{where}: LSE {i} is {actual[i]} where no key is visible");
                continue;
            }
            diff += (double)(actual[i] - expected[i]) * (actual[i] - expected[i]);
            norm += (double)expected[i] * expected[i];
        }
        return norm == 0 ? 0 : Math.Sqrt(diff / norm);
    }

    /// <summary>Uniform in [−2, 2), rounded to bf16 so the CPU computes on exactly the GPU's inputs.</summary>
    public static float[] RandomBf16(Random random, int n)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++)
            x[i] = BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(random.NextSingle() * 4 - 2) & 0xFFFF0000u);
        return x;
    }
}
