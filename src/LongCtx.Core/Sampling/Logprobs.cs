using System.Numerics.Tensors;

namespace LongCtx.Sampling;

/// <summary>One of the most likely tokens at a position, with its log probability.</summary>
public readonly record struct TopLogprob(int Token, float Logprob);

/// <summary>A token's log probability at a position, and the position's most likely tokens, best first.</summary>
public sealed record PositionLogprobs(float Logprob, TopLogprob[] Top)
{
    /// <summary>The same with at most <paramref name="count"/> most likely tokens: the first of a longer list (ties went to the lower id in both).</summary>
    public PositionLogprobs Cut(int count) => count >= Top.Length ? this : this with { Top = Top[..count] };
}

/// <summary>
/// Log probabilities: the natural log-softmax of the raw logits over the whole vocabulary, before temperature, top-k
/// and top-p (as vLLM reports by default): what the model thinks, not what the sampler drew from. The host's
/// computation; the GPU's (Kernels/token_logprobs.cu) reads back only these figures instead of the logits.
/// </summary>
public static class Logprobs
{
    /// <summary>OpenAI's limit on the most likely tokens listed per position.</summary>
    public const int MaxTop = 20;

    /// <summary><paramref name="token"/>'s log probability under <paramref name="logits"/>, and their <paramref name="top"/> most likely tokens.</summary>
    public static PositionLogprobs Of(ReadOnlySpan<float> logits, int token, int top)
    {
        double logSum = LogSumExp(logits);
        return new PositionLogprobs((float)(logits[token] - logSum), MostLikely(logits, top, logSum));
    }

    /// <summary>
    /// log Σ exp(logits), shifted by the maximum so that no term overflows. Vectorized, a slice at a time summed in
    /// double: it runs for every token of every request that asks for logprobs, on the scheduler thread.
    /// </summary>
    public static double LogSumExp(ReadOnlySpan<float> logits)
    {
        const int Slice = 4096;
        float max = TensorPrimitives.Max(logits);
        Span<float> terms = stackalloc float[Slice];
        double sum = 0;
        for (int start = 0; start < logits.Length; start += Slice)
        {
            var part = logits.Slice(start, Math.Min(Slice, logits.Length - start));
            var t = terms[..part.Length];
            TensorPrimitives.Subtract(part, max, t);
            TensorPrimitives.Exp(t, t);
            sum += TensorPrimitives.Sum<float>(t);
        }
        return max + Math.Log(sum);
    }

    /// <summary>
    /// The <paramref name="count"/> highest logits, best first; a tie goes to the lower id, as greedy
    /// sampling's argmax does, so the greedy token always heads the list.
    /// </summary>
    private static TopLogprob[] MostLikely(ReadOnlySpan<float> logits, int count, double logSum)
    {
        count = Math.Min(count, logits.Length);
        var ids = new int[count];
        int kept = 0;
        // Most logits fall below the list's last one once it is full: one comparison each.
        float floor = float.NegativeInfinity;
        for (int id = 0; count > 0 && id < logits.Length; id++)
        {
            float x = logits[id];
            if (kept == count && x <= floor) continue;
            int at = kept < count ? kept++ : count - 1;
            while (at > 0 && x > logits[ids[at - 1]]) { ids[at] = ids[at - 1]; at--; }
            ids[at] = id;
            if (kept == count) floor = logits[ids[count - 1]];
        }
        var top = new TopLogprob[count];
        for (int i = 0; i < count; i++) top[i] = new TopLogprob(ids[i], (float)(logits[ids[i]] - logSum));
        return top;
    }
}
