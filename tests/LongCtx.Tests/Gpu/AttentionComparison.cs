using LongCtx.Backends;
using LongCtx.Tensors;

namespace LongCtx.Tests.Gpu;

/// <summary>Inputs and error measures shared by the GPU attention tests that compare against the CPU backend.</summary>
internal static class AttentionComparison
{
    /// <summary>
    /// Relative error of a bf16 attention output against the float32 CPU backend on the same bf16 inputs: about three
    /// times cuDNN's error against torch's SDPA, each rounding its output to bf16 (docs/TESTS.md).
    /// </summary>
    public const double OutputTolerance = 6e-3;

    /// <summary>
    /// Relative error of the float32 LSE: a few float32 roundings, several times what cuDNN and the own kernel
    /// measure against torch's logsumexp (docs/TESTS.md).
    /// </summary>
    public const double LseTolerance = 5e-7;

    /// <summary>One attention call on <paramref name="b"/> with the rule (scale 1/√d without one): its output and LSE read back as floats.</summary>
    public static (float[] Output, float[] Lse) Run(IBackend b, int heads, int kvHeads, int headDim, float[] q, TokenLayout queries, float[] k, float[] v, TokenLayout keys,
        AttentionRule? rule = null)
    {
        using var qt = b.Upload<float>(q, queries.Count, heads, headDim);
        using var kt = b.Upload<float>(k, keys.Count, kvHeads, headDim);
        using var vt = b.Upload<float>(v, keys.Count, kvHeads, headDim);
        using var output = b.Allocate(b.ActivationType, queries.Count, heads, headDim);
        using var lse = b.Allocate(DType.F32, queries.Count, heads);
        b.Attention(qt, queries, kt, vt, keys, rule ?? AttentionRule.ForHeadDim(headDim), output, lse);
        var o = new float[output.Length];
        var l = new float[lse.Length];
        b.Download<float>(output, o);
        b.Download<float>(lse, l);
        return (o, l);
    }

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
