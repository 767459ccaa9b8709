namespace LongCtx.Tests.ContextParallel;

/// <summary>Attention written the obvious way, in double: the truth the parallel strategies are held to.</summary>
internal static class DenseReference
{
    /// <summary>
    /// q [Tq, H, D] against k, v [Tk, KVH, D]; query i sees key j iff same sequence and key position ≤ query position
    /// (and, with a window, query position − window &lt; key position); scores scaled by 1/√d (or the scale given) and,
    /// with a cap, soft-capped to cap·tanh(s / cap).
    /// </summary>
    public static float[] Attention(float[] q, int[] qSeq, int[] qPos, float[] k, float[] v, int[] kSeq, int[] kPos, int heads, int kvHeads, int d,
        int? window = null, double? softCap = null, double? scaleOverride = null)
    {
        int tq = qSeq.Length, tk = kSeq.Length, group = heads / kvHeads;
        double scale = scaleOverride ?? 1 / Math.Sqrt(d);
        var output = new float[tq * heads * d];
        var scores = new double[tk];
        for (int i = 0; i < tq; i++)
            for (int h = 0; h < heads; h++)
            {
                int kh = h / group;
                double max = double.NegativeInfinity;
                for (int j = 0; j < tk; j++)
                {
                    if (kSeq[j] != qSeq[i] || kPos[j] > qPos[i] || window is int w && qPos[i] - kPos[j] >= w) { scores[j] = double.NegativeInfinity; continue; }
                    double s = 0;
                    for (int x = 0; x < d; x++) s += (double)q[(i * heads + h) * d + x] * k[(j * kvHeads + kh) * d + x];
                    scores[j] = softCap is double cap ? cap * Math.Tanh(s * scale / cap) : s * scale;
                    max = Math.Max(max, scores[j]);
                }
                if (double.IsNegativeInfinity(max)) continue;
                double sum = 0;
                for (int j = 0; j < tk; j++) sum += scores[j] = double.IsNegativeInfinity(scores[j]) ? 0 : Math.Exp(scores[j] - max);
                for (int x = 0; x < d; x++)
                {
                    double o = 0;
                    for (int j = 0; j < tk; j++) if (scores[j] != 0) o += scores[j] * v[(j * kvHeads + kh) * d + x];
                    output[(i * heads + h) * d + x] = (float)(o / sum);
                }
            }
        return output;
    }

    public static double RelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        double num = 0, den = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double e = actual[i] - (double)expected[i];
            num += e * e;
            den += (double)expected[i] * expected[i];
        }
        return Math.Sqrt(num / Math.Max(den, 1e-300));
    }
}
