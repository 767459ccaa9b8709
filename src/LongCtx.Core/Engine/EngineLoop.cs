using System.Diagnostics;
using LongCtx.Sampling;

namespace LongCtx.Engine;

/// <summary>
/// The one generation loop every front end drives (generate, chat, bench, the server's scheduler): requests are admitted,
/// prefilled (whole or in pieces, as the <see cref="IStepPolicy"/> plans each step), then decoded a token a step. Every
/// token, the first included, is drawn where the logits are; <see cref="Accept"/> is the one place that decides whether
/// a request goes on. Used from one thread at a time.
/// </summary>
public sealed class EngineLoop(InferenceEngine engine, IStepPolicy? policy = null)
{
    private readonly IStepPolicy _policy = policy ?? new PrefillFirst();
    private readonly List<RequestState> _waiting = [], _decoding = [];

    public InferenceEngine Engine => engine;
    /// <summary>Requests whose prefill has not completed, oldest first.</summary>
    public IReadOnlyList<RequestState> Waiting => _waiting;
    /// <summary>Requests decoding a token a step.</summary>
    public IReadOnlyList<RequestState> Decoding => _decoding;
    public bool HasWork => _waiting.Count > 0 || _decoding.Count > 0;

    /// <summary>Takes a request (checked here: a bad one is refused before anything runs) to be prefilled in a later step.</summary>
    public RequestState Admit(GenerationRequest request)
    {
        request.Sampling.Validate();
        foreach (int token in request.Sampling.LogitBias?.Keys ?? [])
            if (token >= engine.Config.VocabSize) throw new SettingException(Setting.LogitBias, $"names token {token}, outside the vocabulary of {engine.Config.VocabSize}");
        if (request.MaxNewTokens < 0) throw new SettingException(Setting.MaxNewTokens, "must be 0 or more", request.MaxNewTokens);
        foreach (var top in new[] { request.Logprobs, request.PromptLogprobs })
            if (top is < 0 or > Logprobs.MaxTop) throw new SettingException(Setting.Logprobs, $"must be 0 to {Logprobs.MaxTop} (most likely tokens listed)", top);
        if (request.StopStrings.Count > 0 && request.Text is null) throw new ArgumentException("stop strings need the text of the tokens: give the request a decoder");
        var sequence = request.Resume ?? engine.NewSequence();
        var state = new RequestState(request, sequence, Generation.UncachedSuffix(sequence, request.PromptTokens));
        _waiting.Add(state);
        return state;
    }

    /// <summary>
    /// Drops a request wherever it is and frees its KV, unless <paramref name="keepKv"/> leaves it to the caller (a request
    /// that resumed a conversation and has not started its prefill leaves that conversation's KV as it found it).
    /// </summary>
    public void Cancel(RequestState request, bool keepKv = false)
    {
        if (request.Status == RequestStatus.Finished) return;
        _waiting.Remove(request);
        _decoding.Remove(request);
        if (!keepKv) engine.Release(request.Sequence);
        request.End(FinishReason.Cancelled);
    }

    /// <summary>One step as the policy plans it within <paramref name="tokenBudget"/> new tokens: prefill pieces, then a decode step.</summary>
    public StepResult Step(int tokenBudget)
    {
        var plan = _policy.Plan(_waiting, _decoding, tokenBudget);
        var outputs = new List<StepOutput>();
        var prefilled = new List<RequestState>();
        if (plan.Prefill.Count > 0) Prefill(plan.Prefill, outputs, prefilled);
        DecodeTiming? decode = plan.Decode && _decoding.Count > 0 ? Decode(outputs) : null;
        return new StepResult(outputs, prefilled, plan.Prefill.Count > 0 ? 1 : 0, decode);
    }

    private void Prefill(IReadOnlyList<PrefillPiece> pieces, List<StepOutput> outputs, List<RequestState> prefilled)
    {
        var inputs = pieces.Select(Input).ToList();
        var first = pieces[0].Request.Request;
        PrefillResult result;
        try { result = engine.Prefill(inputs, first.Strategy, first.Approximate); }
        catch (Exception e)
        {
            foreach (var p in pieces) Fail(p.Request, e, outputs);
            return;
        }
        for (int i = 0; i < pieces.Count; i++)
        {
            var r = pieces[i].Request;
            r.Prefilled += pieces[i].Tokens;
            (r.Strategy, r.Choice, r.Blocks) = (result.Strategy, result.Choice, result.Blocks);
            r.AddPromptLogits(result.Logits[i]);
            if (result.PromptLogprobs is { } scored) r.AddPromptLogprobs(scored[i]);
            if (r.Remaining > 0) continue;
            _waiting.Remove(r);
            prefilled.Add(r);
            if (result.Drawn?[i] is not { } drawn)
            {
                r.End(FinishReason.Length); // a prompt alone (max tokens 0: its logprobs, a loglikelihood)
                outputs.Add(new StepOutput(r, null, null, "", 0, FinishReason.Length));
                continue;
            }
            r.Status = RequestStatus.Decoding;
            _decoding.Add(r);
            Accept(r, drawn.Token, drawn.Logprobs, outputs);
        }
    }

    /// <summary>
    /// A piece as the engine prefills it: the next tokens of the prompt; for the last piece, the first token's draw; the
    /// kept logits and the prompt's logprobs of the rows the piece holds.
    /// </summary>
    private static PrefillInput Input(PrefillPiece piece)
    {
        var (r, request) = (piece.Request, piece.Request.Request);
        int start = r.Prefilled, end = start + piece.Tokens, n = r.NewTokens.Length;
        bool last = end == n;
        return new PrefillInput(r.Sequence, r.NewTokens[start..end])
        {
            KeepLast = Math.Max(0, end - Math.Max(start, n - request.KeepLastLogits)),
            Draw = last && request.MaxNewTokens > 0 ? r.Sampler.Draw() : null,
            DrawLogprobs = request.Logprobs,
            // Each row's logprob is of the token after it: the next piece's first for a piece's last row, none for the prompt's.
            Scoring = request.PromptLogprobs is { } top ? (r.NewTokens[(start + 1)..Math.Min(n, end + 1)].Concat(last ? [-1] : []).ToArray(), top) : null,
        };
    }

    private DecodeTiming? Decode(List<StepOutput> outputs)
    {
        var batch = _decoding.ToList();
        var draws = batch.Select(r => r.Sampler.Draw()).ToList();
        var clock = Stopwatch.StartNew();
        (int[] Tokens, PositionLogprobs?[] Logprobs) drawn;
        try { drawn = engine.DecodeTokens(batch.Select(r => (r.Sequence, r.Generated[^1])).ToList(), draws, batch.Select(r => r.Request.Logprobs).ToList()); }
        catch (Exception e)
        {
            foreach (var r in batch) Fail(r, e, outputs);
            return null;
        }
        var timing = new DecodeTiming(batch.Count, clock.Elapsed);
        for (int i = 0; i < batch.Count; i++) Accept(batch[i], drawn.Tokens[i], drawn.Logprobs[i], outputs);
        return timing;
    }

    /// <summary>
    /// Takes a drawn token: its text (held back while it may be the start of a stop string), and whether the request
    /// ends — on a stop token, a stop string, its token limit, or the model's context window.
    /// </summary>
    private void Accept(RequestState r, int token, PositionLogprobs? logprobs, List<StepOutput> outputs)
    {
        var request = r.Request;
        r.AddGenerated(token);
        int offset = r.DecodedChars;
        string text = "";
        FinishReason? finish = null;
        if (request.StopTokens?.Contains(token) == true) finish = FinishReason.StopToken;
        else
        {
            if (request.Text is { } decoder)
            {
                string decoded = decoder.Push(token);
                r.DecodedChars += decoded.Length;
                (text, bool stopped) = r.Stops.Push(decoded);
                r.AddText(text);
                if (stopped) (finish, r.TextStopped) = (FinishReason.StopText, true);
            }
            if (finish is null && r.Generated.Count >= request.MaxNewTokens) finish = FinishReason.Length;
            // The token just drawn is fed back at position CachedTokens.
            else if (finish is null && r.Sequence.CachedTokens + 1 >= engine.Config.MaxPositionEmbeddings) finish = FinishReason.ContextWindow;
        }
        string rest = "";
        if (finish is { } reason)
        {
            rest = reason == FinishReason.StopText ? "" : FlushText(r);
            _decoding.Remove(r);
            r.End(reason);
        }
        outputs.Add(new StepOutput(r, token, logprobs, text, offset, finish, rest));
    }

    /// <summary>The text held back when a generation ends without a stop string: the decoder's rest, past the stop strings.</summary>
    private static string FlushText(RequestState r)
    {
        if (r.Request.Text is not { } decoder) return "";
        var (text, stopped) = r.Stops.Push(decoder.Flush());
        string rest = stopped ? text : text + r.Stops.Flush();
        r.TextStopped |= stopped;
        r.AddText(rest);
        return rest;
    }

    private void Fail(RequestState r, Exception error, List<StepOutput> outputs)
    {
        _waiting.Remove(r);
        _decoding.Remove(r);
        engine.Release(r.Sequence);
        r.End(FinishReason.Failed, error);
        outputs.Add(new StepOutput(r, null, null, "", r.DecodedChars, FinishReason.Failed));
    }
}
