using System.Numerics;
using System.Numerics.Tensors;

namespace LongCtx.Engine;

/// <summary>How the next token is drawn from the logits.</summary>
public sealed record SamplingOptions(float Temperature = 0f, float TopP = 1f, int TopK = 0, int? Seed = null)
{
    public bool Greedy => Temperature <= 0f;

    public void Validate()
    {
        if (float.IsNaN(Temperature) || Temperature < 0) throw new LongCtxException($"--temperature {Temperature} must be 0 (greedy) or positive");
        if (!(TopP > 0 && TopP <= 1)) throw new LongCtxException($"--top-p {TopP} must be in (0, 1]");
        if (TopK < 0) throw new LongCtxException($"--top-k {TopK} must be 0 (off) or positive");
    }
}

/// <summary>
/// Greedy, or temperature sampling restricted by top-k and then top-p (nucleus), in the order Hugging
/// Face applies them. Seeded, so a seed gives the same tokens on every run.
/// </summary>
public sealed class Sampler(SamplingOptions options)
{
    private readonly Random _random = options.Seed is { } s ? new Random(s) : new Random();

    public int Next(ReadOnlySpan<float> logits)
    {
        if (options.Greedy) return ArgMax(logits);
        // Candidates sorted by logit, cut by top-k, then softmax at temperature, then cut by top-p.
        var order = new int[logits.Length];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        var keys = logits.ToArray();
        Array.Sort(keys, order, Comparer<float>.Create((a, b) => b.CompareTo(a)));
        int k = options.TopK > 0 ? Math.Min(options.TopK, order.Length) : order.Length;
        var p = new double[k];
        double max = keys[0], sum = 0;
        for (int i = 0; i < k; i++) sum += p[i] = Math.Exp((keys[i] - max) / options.Temperature);
        double cumulative = 0;
        int keep = k;
        for (int i = 0; i < k; i++)
        {
            cumulative += p[i] / sum;
            if (cumulative >= options.TopP) { keep = i + 1; break; }
        }
        double kept = 0;
        for (int i = 0; i < keep; i++) kept += p[i];
        double u = _random.NextDouble() * kept;
        for (int i = 0; i < keep; i++)
        {
            u -= p[i];
            if (u <= 0) return order[i];
        }
        return order[keep - 1];
    }

    /// <summary>
    /// The first index of the largest logit (NaN never wins). The maximum is found with SIMD first (a decode step
    /// scans the whole vocabulary, 128K logits for Llama 3), then the first row equal to it.
    /// </summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        if (logits.Length == 0) return 0;
        float max = TensorPrimitives.Max(logits);
        if (float.IsNaN(max)) return ArgMaxSkippingNaN(logits);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var target = new Vector<float>(max);
            while (i + Vector<float>.Count <= logits.Length && !Vector.EqualsAny(new Vector<float>(logits[i..]), target)) i += Vector<float>.Count;
        }
        while (logits[i] != max) i++;
        return i;
    }

    private static int ArgMaxSkippingNaN(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[best] || float.IsNaN(logits[best])) best = i;
        return best;
    }
}
