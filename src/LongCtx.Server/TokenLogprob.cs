using System.Numerics.Tensors;
using LongCtx.Text;

namespace LongCtx.Server;

/// <summary>One of the most likely tokens at a position, with its log probability.</summary>
public readonly record struct TopLogprob(int Token, float Logprob);

/// <summary>
/// A token of the reply (or, with echo, of the prompt) with its log probability under the model, the
/// most likely tokens at its position, and where its text starts in the choice's text. Logprob and Top
/// are null for the prompt's first token, which nothing predicts.
/// </summary>
/// <remarks>
/// Log probabilities are the natural log-softmax of the raw logits over the whole vocabulary, before
/// temperature, top-k and top-p (as vLLM reports by default): what the model thinks, not what the sampler drew from.
/// </remarks>
public sealed record TokenLogprob(int Token, float? Logprob, TopLogprob[]? Top, int TextOffset)
{
    /// <summary>The entry for <paramref name="token"/> at a position whose next-token logits are <paramref name="logits"/>.</summary>
    public static TokenLogprob Of(ReadOnlySpan<float> logits, int token, int top, int textOffset)
    {
        double logSum = LogSumExp(logits);
        return new TokenLogprob(token, (float)(logits[token] - logSum), MostLikely(logits, top, logSum), textOffset);
    }

    /// <summary>
    /// The prompt's entries from the logits of its prefill at every position (row i predicts token i + 1), with
    /// offsets into the prompt's text as the reply's text decodes (special tokens skipped).
    /// </summary>
    public static TokenLogprob[] ForPrompt(float[] logits, int[] prompt, int top, Tokenizer tokenizer)
    {
        int vocab = logits.Length / prompt.Length;
        var offsets = new int[prompt.Length];
        var decoder = tokenizer.CreateStreamingDecoder(skipSpecialTokens: true);
        for (int i = 1; i < prompt.Length; i++) offsets[i] = offsets[i - 1] + decoder.Push(prompt[i - 1]).Length;
        var entries = new TokenLogprob[prompt.Length];
        entries[0] = new TokenLogprob(prompt[0], null, null, 0);
        // Positions are independent and an evaluation prompt has thousands of them, each a pass over the vocabulary.
        System.Threading.Tasks.Parallel.For(1, prompt.Length, i => entries[i] = Of(logits.AsSpan((i - 1) * vocab, vocab), prompt[i], top, offsets[i]));
        return entries;
    }

    /// <summary>
    /// log Σ exp(logits), shifted by the maximum so that no term overflows. Vectorized, a slice at a time summed in
    /// double: it runs for every token of every request that asks for logprobs, on the scheduler thread.
    /// </summary>
    private static double LogSumExp(ReadOnlySpan<float> logits)
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
