using System.Collections.Concurrent;
using System.Diagnostics;
using LongCtx.Engine;

namespace LongCtx.Server;

/// <summary>
/// The one thread that owns the engine (it is not thread-safe) and drives its loop (<see cref="EngineLoop"/>): it admits
/// the requests that arrived — a chat that extends a kept conversation resumes its KV — runs a step within
/// --max-batch-tokens, and sends each request what the step gave it through its channel.
/// </summary>
public sealed class Scheduler : IDisposable
{
    private readonly ServedModel _model;
    private readonly ServerOptions _options;
    private readonly ServerMetrics _metrics;
    private readonly BlockingCollection<GenerationJob> _incoming = new();
    private readonly EngineLoop _loop;
    private readonly Dictionary<RequestState, RunningRequest> _requests = [];
    private readonly KeptConversations _kept;
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _thread;
    private long _lastStateUpdate;

    public Scheduler(ServedModel model, ServerOptions options, ServerMetrics metrics)
    {
        _model = model;
        _options = options;
        _metrics = metrics;
        _loop = new EngineLoop(model.Engine);
        _kept = new KeptConversations(options.KeptConversations, model.Engine.Release);
        _thread = new Thread(Loop) { Name = "longctx-scheduler", IsBackground = true };
        _thread.Start();
    }

    private InferenceEngine Engine => _model.Engine;

    public void Submit(GenerationJob job)
    {
        try { _incoming.Add(job); }
        catch (InvalidOperationException) { job.Complete(new FailedEvent(new ApiException(503, "the server is shutting down"))); }
    }

    private void Loop()
    {
        try
        {
            while (true)
            {
                _stop.Token.ThrowIfCancellationRequested();
                if (!_loop.HasWork) Admit(_incoming.Take(_stop.Token));
                while (_incoming.TryTake(out var job)) Admit(job);
                try
                {
                    DropCancelled();
                    if (_loop.HasWork) Report(_loop.Step(_options.MaxBatchTokens));
                }
                catch (Exception e)
                {
                    // A bug: fail what is in the loop rather than the server.
                    foreach (var r in _requests.Values.ToList())
                    {
                        _loop.Cancel(r.State);
                        Fail(r, ApiException.Internal(e));
                    }
                }
                UpdateState(force: _loop.Decoding.Count == 0);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or InvalidOperationException) { } // Dispose: stop taking work
        foreach (var r in _requests.Values)
        {
            bool waiting = r.State.Status == RequestStatus.Waiting;
            _loop.Cancel(r.State);
            if (waiting) r.Job.Complete(new FailedEvent(new ApiException(503, "the server is shutting down")));
        }
        foreach (var j in _incoming) j.Complete(new FailedEvent(new ApiException(503, "the server is shutting down")));
        _kept.Clear();
    }

    /// <summary>
    /// Hands a job to the loop: a chat whose prompt extends a kept conversation resumes its KV (an approximate request,
    /// or one that wants its prompt's logprobs, always starts afresh: the engine prefills those as a first turn).
    /// </summary>
    private void Admit(GenerationJob job)
    {
        var p = job.Params;
        var kept = p.Chat && p.Approximate is null && !p.PromptLogprobs ? _kept.Take(p.PromptTokens) : null;
        var request = new GenerationRequest(p.PromptTokens, p.MaxTokens, p.Sampling, p.Strategy, KeepLastLogits: 0, _model.StopTokens, p.Approximate)
        {
            StopStrings = p.Stop,
            Text = _model.Tokenizer.CreateStreamingDecoder(skipSpecialTokens: true),
            Logprobs = p.Logprobs,
            PromptLogprobs = p.PromptLogprobs ? p.Logprobs : null,
            Resume = kept,
        };
        try
        {
            var state = _loop.Admit(request);
            _requests[state] = new RunningRequest(job, state);
        }
        catch (Exception e)
        {
            if (kept is not null) Engine.Release(kept);
            job.Complete(new FailedEvent(ApiException.From(e, PromptParam(job))));
        }
    }

    private void DropCancelled()
    {
        foreach (var r in _requests.Values.Where(r => r.Job.Cancelled).ToList())
        {
            // A conversation resumed by a request that never started its prefill is kept as it was.
            bool untouched = r.State is { Status: RequestStatus.Waiting, Prefilled: 0, Request.Resume: not null };
            _loop.Cancel(r.State, keepKv: untouched);
            if (untouched) _kept.Keep(r.State.Sequence);
            _requests.Remove(r.State);
            r.Job.Abandon();
            _metrics.CancelledRequest();
        }
    }

    /// <summary>Sends each request what the step gave it: the echoed prompt, tokens' text and logprobs, the end.</summary>
    private void Report(StepResult step)
    {
        if (step.PrefillCalls > 0) _metrics.PrefillCall();
        foreach (var state in step.Prefilled)
        {
            var p = _requests[state].Job.Params;
            _metrics.Prefilled(state.Strategy, p.PromptTokens.Length, state.CachedTokens);
            if (p.EchoText is not null)
                _requests[state].Job.Send(new TextEvent(p.EchoText, p.PromptLogprobs ? TokenLogprob.ForPrompt(state.PromptLogprobs!, p.PromptTokens, _model.Tokenizer) : null));
        }
        if (step.Decode is { } decode) _metrics.DecodeStep(decode.Sequences, decode.Elapsed.TotalSeconds);
        foreach (var output in step.Outputs)
        {
            var r = _requests[output.Request];
            if (output.Finish == FinishReason.Failed)
            {
                var e = output.Request.Error!;
                // A prefill refused for its input is the request's fault; a decode step that fails is the server's.
                Fail(r, output.Request.Generated.Count == 0 ? ApiException.From(e, PromptParam(r.Job)) : ApiException.Internal(e));
                continue;
            }
            if (output.Token is not null)
            {
                if (output.Request.Generated.Count == 1) _metrics.FirstToken(Stopwatch.GetElapsedTime(r.Job.ReceivedAt).TotalSeconds);
                r.Take(output);
            }
            if (output.Finish is { } reason) Finish(r, reason, output.FinalText);
        }
    }

    private static string PromptParam(GenerationJob job) => job.Params.Chat ? "messages" : "prompt";

    private void Fail(RunningRequest r, ApiException error)
    {
        _requests.Remove(r.State);
        r.Job.Complete(new FailedEvent(error));
    }

    private void Finish(RunningRequest r, FinishReason reason, string rest)
    {
        _requests.Remove(r.State);
        var logprobs = r.TakeLogprobs();
        if (rest.Length > 0 || logprobs?.Count > 0) r.Job.Send(new TextEvent(rest, logprobs));
        // Keep the conversation before the client hears the reply ended: its next turn may arrive at once and
        // must find the reply's tokens remembered.
        if (r.Job.Params.Chat && !r.Job.Cancelled) KeepConversation(r);
        else Engine.Release(r.State.Sequence);
        r.Job.Complete(new FinishedEvent(reason.ApiName(), r.Usage, r.State.Generated.ToArray(), r.State.Strategy));
    }

    /// <summary>Keeps a finished chat's KV for its next turn, and the reply's tokens for when the client sends the reply back.</summary>
    private void KeepConversation(RunningRequest r)
    {
        if (!r.State.TextStopped)
        {
            var reply = r.State.Generated.ToArray();
            if (reply.Length > 0 && _model.StopTokens.Contains(reply[^1])) reply = reply[..^1];
            _model.Replies.Remember(r.State.Text, reply);
        }
        // An approximate prefill's KV is not what an exact one computes: a next turn prefilled on it would carry
        // the approximation under an exact strategy's name, and star/apb refuse a cached prefix. That turn starts over.
        if (r.Job.Params.Approximate is null) _kept.Keep(r.State.Sequence);
        else Engine.Release(r.State.Sequence);
    }

    private void UpdateState(bool force)
    {
        // KvBytesPerRank runs on every rank: a few times a second is enough for a gauge.
        if (!force && Stopwatch.GetElapsedTime(_lastStateUpdate).TotalMilliseconds < 250) return;
        _lastStateUpdate = Stopwatch.GetTimestamp();
        _metrics.SchedulerState(_loop.Decoding.Count, _loop.Waiting.Count, _kept.Count, Engine.KvBytesPerRank());
    }

    public void Dispose()
    {
        _incoming.CompleteAdding();
        _stop.Cancel();
        _thread.Join();
    }
}
