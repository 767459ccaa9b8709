using LongCtx.Sampling;

namespace LongCtx.Engine;

/// <summary>
/// One step's news of one request: a token it drew (null when it ended without one) with its logprobs when asked, the
/// text that token released and where its text starts among the characters decoded so far, and, when the request
/// ended, why, with the text held back until then (<paramref name="FinalText"/>).
/// </summary>
public sealed record StepOutput(RequestState Request, int? Token, PositionLogprobs? Logprobs, string Text, int TextOffset, FinishReason? Finish, string FinalText = "");

/// <summary>A decode step: how many sequences it gave a token, and how long it took.</summary>
public readonly record struct DecodeTiming(int Sequences, TimeSpan Elapsed);

/// <summary>
/// What one <see cref="EngineLoop.Step"/> did: the outputs in the order they came (a request whose prefill completed may
/// have its first token and, decoded in the same step, its second), the requests whose prefill completed, the engine
/// prefill calls made and the decode step if one ran.
/// </summary>
public sealed record StepResult(IReadOnlyList<StepOutput> Outputs, IReadOnlyList<RequestState> Prefilled, int PrefillCalls, DecodeTiming? Decode);
