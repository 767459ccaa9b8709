namespace LongCtx.Engine;

/// <summary><paramref name="Tokens"/> more of a waiting request's prompt to prefill this step (the rest of it, or a chunk).</summary>
public readonly record struct PrefillPiece(RequestState Request, int Tokens);

/// <summary>
/// One step of <see cref="EngineLoop"/>: prefill pieces, fused into one engine call (so of one strategy; an approximate
/// prefill alone), then, with <paramref name="Decode"/>, a decode step of every request that is decoding by then.
/// </summary>
public sealed record StepPlan(IReadOnlyList<PrefillPiece> Prefill, bool Decode);

/// <summary>
/// Decides what each step runs, from the waiting requests (oldest first, each with what is left of its prompt), the
/// decoding ones and a budget of new tokens. A policy that decodes every running request and spends the rest of the
/// budget on prefill chunks of waiting ones interleaves long prefills with other requests' tokens (chunked prefill is
/// exact: a piece is a partial prefill against the KV the earlier ones left).
/// </summary>
public interface IStepPolicy
{
    StepPlan Plan(IReadOnlyList<RequestState> waiting, IReadOnlyList<RequestState> decoding, int tokenBudget);
}

/// <summary>
/// Prefills first: the oldest waiting request's whole prompt, fused with every later waiting one of the same exact
/// strategy while their new tokens fit the budget (an approximate request, or one that wants its prompt's logprobs, alone:
/// the engine runs those one at a time); then a decode step of every decoding request — in the same step, or, without
/// <paramref name="decodeInSameStep"/>, only in steps with nothing to prefill (so a prefill's step times the prefill alone).
/// </summary>
public sealed class PrefillFirst(bool decodeInSameStep = true) : IStepPolicy
{
    public StepPlan Plan(IReadOnlyList<RequestState> waiting, IReadOnlyList<RequestState> decoding, int tokenBudget)
    {
        if (waiting.Count == 0) return new StepPlan([], Decode: true);
        var first = waiting[0].Request;
        if (!Fusable(first)) return new StepPlan([new PrefillPiece(waiting[0], waiting[0].Remaining)], decodeInSameStep);
        var pieces = new List<PrefillPiece>();
        long total = 0;
        foreach (var r in waiting)
        {
            if (!Fusable(r.Request) || r.Request.Strategy != first.Strategy) continue;
            var piece = new PrefillPiece(r, r.Remaining);
            if (pieces.Count > 0 && total + piece.Tokens > tokenBudget) break;
            pieces.Add(piece);
            total += piece.Tokens;
        }
        return new StepPlan(pieces, decodeInSameStep);
    }

    /// <summary>Whether a request's prefill can share a call with others': exact and without prompt logprobs.</summary>
    internal static bool Fusable(GenerationRequest r) => r.Approximate is null && r.PromptLogprobs is null;
}

/// <summary>
/// Decodes first, as vLLM's chunked prefill schedules: every decoding request gets its token each step, and what the
/// budget has left (at least one token, so a waiting prompt always advances) goes to prefill chunks of the waiting
/// requests, oldest first, fused into one engine call while they share an exact strategy. A long prompt is prefilled a
/// chunk a step beside the others' tokens instead of stopping them; chunks are partial prefills, so the result is what
/// a whole prefill gives. An approximate request is prefilled whole and alone when it is the oldest (its split needs the
/// whole prompt); one that wants its prompt's logprobs is chunked alone (the engine scores one sequence at a time).
/// </summary>
public sealed class ChunkedPrefill : IStepPolicy
{
    public StepPlan Plan(IReadOnlyList<RequestState> waiting, IReadOnlyList<RequestState> decoding, int tokenBudget)
    {
        int left = Math.Max(1, tokenBudget - decoding.Count);
        if (waiting.Count == 0) return new StepPlan([], Decode: true);
        var oldest = waiting[0];
        if (oldest.Request.Approximate is not null) return new StepPlan([new PrefillPiece(oldest, oldest.Remaining)], Decode: true);
        if (oldest.Request.PromptLogprobs is not null) return new StepPlan([new PrefillPiece(oldest, Math.Min(left, oldest.Remaining))], Decode: true);
        var pieces = new List<PrefillPiece>();
        foreach (var r in waiting)
        {
            if (left == 0) break;
            if (!PrefillFirst.Fusable(r.Request) || r.Request.Strategy != oldest.Request.Strategy) continue;
            int tokens = Math.Min(left, r.Remaining);
            pieces.Add(new PrefillPiece(r, tokens));
            left -= tokens;
        }
        return new StepPlan(pieces, Decode: true);
    }

}
