using LongCtx.Approximate;
using LongCtx.ContextParallel;
using LongCtx.Sampling;
using LongCtx.Text;

namespace LongCtx.Engine;

/// <summary>
/// One generation as <see cref="EngineLoop"/> admits it: the prompt (a whole conversation), how to draw and when to stop,
/// what to report (logprobs, kept logits), and how to run attention. The loop prefills the tokens the sequence has not
/// cached, then decodes until a stop token, a stop string, the token limit or the model's context window ends it.
/// </summary>
/// <param name="PromptTokens">the whole conversation; a <see cref="Resume"/>d sequence's cached tokens are a prefix of it</param>
/// <param name="KeepLastLogits">logits of the prompt's last rows to keep (dumped logits, an approximate run's error); 0: none</param>
/// <param name="MeasureError">an approximate prefill's last logits are compared with an exact prefill's (<see cref="Generation.Generate"/>)</param>
public sealed record GenerationRequest(
    int[] PromptTokens,
    int MaxNewTokens,
    SamplingOptions Sampling,
    string Strategy = StrategyNames.Auto,
    int KeepLastLogits = 1,
    IReadOnlyCollection<int>? StopTokens = null,
    ApproximateOptions? Approximate = null,
    bool MeasureError = false)
{
    /// <summary>Text that ends the generation before it is sent; needs <see cref="Text"/>.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>Turns the drawn tokens into the text the outputs carry (and <see cref="StopStrings"/> look for); null: tokens only.</summary>
    public StreamingDecoder? Text { get; init; }

    /// <summary>Each drawn token's logprob and this many most likely tokens; null: none.</summary>
    public int? Logprobs { get; init; }

    /// <summary>The prompt's logprobs (each token after the first) with this many most likely tokens; null: none.</summary>
    public int? PromptLogprobs { get; init; }

    /// <summary>The sequence whose cached KV the prompt extends (a conversation's earlier turns); null: a new one.</summary>
    public Sequence? Resume { get; init; }
}
