using LongCtx.Sampling;
using LongCtx.Text;

namespace LongCtx.Server;

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
    /// <summary>The entry for <paramref name="token"/> from its position's logprobs, computed where the logits are.</summary>
    public static TokenLogprob Of(int token, PositionLogprobs position, int textOffset) => new(token, position.Logprob, position.Top, textOffset);

    /// <summary>
    /// The prompt's entries from its prefill's logprobs (position i − 1 gives token i's), with offsets into the
    /// prompt's text as the reply's text decodes (special tokens skipped).
    /// </summary>
    public static TokenLogprob[] ForPrompt(IReadOnlyList<PositionLogprobs> positions, int[] prompt, Tokenizer tokenizer)
    {
        var entries = new TokenLogprob[prompt.Length];
        var decoder = tokenizer.CreateStreamingDecoder(skipSpecialTokens: true);
        int offset = 0;
        entries[0] = new TokenLogprob(prompt[0], null, null, 0);
        for (int i = 1; i < prompt.Length; i++)
        {
            offset += decoder.Push(prompt[i - 1]).Length;
            entries[i] = Of(prompt[i], positions[i - 1], offset);
        }
        return entries;
    }
}
