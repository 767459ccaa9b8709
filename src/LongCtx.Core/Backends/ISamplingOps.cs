using LongCtx.Sampling;
using LongCtx.Tensors;

namespace LongCtx.Backends;

/// <summary>
/// Sampling where the logits are: a backend that implements this reads back tokens and their logprobs instead of rows of
/// logits (the GPU does). <see cref="BackendOps"/> downloads the logits and computes the same on the host for one that
/// does not.
/// </summary>
public interface ISamplingOps
{
    /// <summary>
    /// The next token of each row of logits x [rows, vocab] for its draw: <see cref="TokenPicker.Pick"/> of the row read as
    /// floats (greedy draws: <see cref="Sampler.ArgMax"/>).
    /// </summary>
    void DrawTokens(Tensor x, ReadOnlySpan<TokenDraw> draws, Span<int> result);

    /// <summary>
    /// The log probability of tokens[i] under row i of logits x [rows, vocab], and each row's <paramref name="top"/> most
    /// likely tokens: <see cref="Sampling.Logprobs.Of"/> of the row read as floats.
    /// </summary>
    PositionLogprobs[] Logprobs(Tensor x, ReadOnlySpan<int> tokens, int top);
}
