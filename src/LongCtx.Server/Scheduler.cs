using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using LongCtx.Engine;
using Microsoft.Extensions.Logging;

namespace LongCtx.Server;

/// <summary>
/// The one thread that owns the engine (it is not thread-safe) and drives its loop (<see cref="EngineLoop"/>) with chunked
/// prefill (<see cref="ChunkedPrefill"/>): each step gives every running request its token and spends the rest of
/// --max-num-batched-tokens on prefill chunks, so a long prompt never stops the others' streams. Requests wait in a
/// queue, first come first served, until there is room in the engine (--max-concurrent) and in the KV budget
/// (<see cref="KvBudget"/>); a chat that extends a kept conversation of its partition resumes its KV. Each step's tokens go
/// to their requests' channels. On shutdown (<see cref="BeginDrain"/>) everything running goes on until it ends or the
/// deadline comes, when every request still open gets its final event.
/// </summary>
public sealed class Scheduler : IDisposable
{
    private static readonly TimeSpan Idle = TimeSpan.FromMilliseconds(100);

    private readonly ServedModel _model;
    private readonly ServerOptions _options;
    private readonly ServerMetrics _metrics;
    private readonly ILogger _log;
    private readonly BlockingCollection<GenerationJob> _incoming = new();
    private readonly LinkedList<GenerationJob> _queue = new();
    private readonly EngineLoop _loop;
    private readonly Dictionary<RequestState, RunningRequest> _requests = [];
    private readonly KeptConversations _kept;
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _thread;
    private long _lastStateUpdate, _drainDeadline;

    public Scheduler(ServedModel model, ServerOptions options, ServerMetrics metrics, ILogger? log = null)
    {
        _model = model;
        _options = options;
        _metrics = metrics;
        _log = log ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        _loop = new EngineLoop(model.Engine, new ChunkedPrefill());
        _kept = new KeptConversations(options.KeptConversations, model.Engine.Release);
        KvCapacity = KvBudget.Capacity(model.Engine, options);
        _thread = new Thread(Loop) { Name = "longctx-scheduler", IsBackground = true };
        _thread.Start();
    }

    /// <summary>Positions of KV the server holds at most (<see cref="KvBudget"/>).</summary>
    public long KvCapacity { get; }

    private InferenceEngine Engine => _model.Engine;
    private bool Draining => Interlocked.Read(ref _drainDeadline) != 0;

    public void Submit(GenerationJob job)
    {
        if (job.Params.KvTokens > KvCapacity)
        {
            job.Complete(new FailedEvent(ApiException.BadRequest(
                $"the prompt and max_tokens need {job.Params.KvTokens} positions of KV; this server holds {KvCapacity} at most (--max-kv-tokens): ask for fewer tokens or shorten the prompt",
                job.Params.Chat ? "messages" : "prompt", "context_length_exceeded")));
            return;
        }
        try
        {
            if (Draining) throw new InvalidOperationException();
            _incoming.Add(job);
        }
        catch (InvalidOperationException) { job.Complete(ShuttingDown()); }
    }

    /// <summary>Stops taking requests; those in flight go on until they end or <paramref name="timeout"/> passes, then end with what they have.</summary>
    public void BeginDrain(TimeSpan timeout) =>
        Interlocked.CompareExchange(ref _drainDeadline, Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency), 0);

    private static FailedEvent ShuttingDown() => new(new ApiException(503, "the server is shutting down"));

    private void Loop()
    {
        try
        {
            while (true)
            {
                _stop.Token.ThrowIfCancellationRequested();
                if (!_loop.HasWork && _queue.Count == 0)
                {
                    if (_incoming.TryTake(out var first, (int)Idle.TotalMilliseconds, _stop.Token)) _queue.AddLast(first);
                }
                while (_incoming.TryTake(out var job)) _queue.AddLast(job);
                try
                {
                    DropCancelled();
                    if (Draining && Stopwatch.GetTimestamp() >= Interlocked.Read(ref _drainDeadline)) EndAll();
                    AdmitQueued();
                    if (_loop.HasWork) Report(_loop.Step(_options.MaxBatchTokens));
                }
                catch (Exception e)
                {
                    // A bug: fail what is in the loop rather than the server.
                    ServerLog.StepFailed(_log, e);
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
        EndAll();
        _kept.Clear();
    }

    /// <summary>
    /// Hands queued jobs to the loop, oldest first, while the engine has room for another request and the KV budget for
    /// its prompt and max_tokens (kept conversations are released to make it). The oldest waits for room rather than let
    /// later ones pass it.
    /// </summary>
    private void AdmitQueued()
    {
        while (_queue.First is { } node && _requests.Count < _options.MaxConcurrent)
        {
            var job = node.Value;
            var p = job.Params;
            // An approximate request, or one that wants its prompt's logprobs, always starts afresh: the engine prefills those as a first turn.
            var resumed = p.Chat && p.Approximate is null && !p.PromptLogprobs ? _kept.Take(p.Partition, p.PromptTokens) : null;
            while (KvHeld() + p.KvTokens > KvCapacity && _kept.ReleaseOldest()) { }
            if (KvHeld() + p.KvTokens > KvCapacity)
            {
                if (resumed is not null) _kept.Keep(p.Partition, resumed);
                return;
            }
            _queue.RemoveFirst();
            job.AdmittedAt = Stopwatch.GetTimestamp();
            _metrics.Admitted(Stopwatch.GetElapsedTime(job.ReceivedAt, job.AdmittedAt).TotalSeconds);
            Admit(job, resumed);
        }
    }

    /// <summary>Positions of KV reserved by the requests in the engine (each its prompt and max_tokens) and held by kept conversations.</summary>
    private long KvHeld() => _requests.Values.Sum(r => r.Job.Params.KvTokens) + _kept.Tokens;

    private void Admit(GenerationJob job, Sequence? resumed)
    {
        var p = job.Params;
        var request = new GenerationRequest(p.PromptTokens, p.MaxTokens, p.Sampling, p.Strategy, KeepLastLogits: 0, _model.StopTokens, p.Approximate)
        {
            StopStrings = p.Stop,
            Text = _model.Tokenizer.CreateStreamingDecoder(skipSpecialTokens: true),
            Logprobs = p.Logprobs,
            PromptLogprobs = p.PromptLogprobs ? p.Logprobs : null,
            Resume = resumed,
        };
        try
        {
            var state = _loop.Admit(request);
            _requests[state] = new RunningRequest(job, state);
        }
        catch (Exception e)
        {
            if (resumed is not null) Engine.Release(resumed);
            job.Complete(new FailedEvent(ApiException.From(e, PromptParam(job))));
        }
    }

    private void DropCancelled()
    {
        for (var node = _queue.First; node is not null;)
        {
            var next = node.Next;
            if (node.Value.Cancelled)
            {
                _queue.Remove(node);
                node.Value.Abandon();
                _metrics.CancelledRequest();
            }
            node = next;
        }
        foreach (var r in _requests.Values.Where(r => r.Job.Cancelled).ToList())
        {
            // A conversation resumed by a request that never started its prefill is kept as it was.
            bool untouched = r.State is { Status: RequestStatus.Waiting, Prefilled: 0, Request.Resume: not null };
            _loop.Cancel(r.State, keepKv: untouched);
            if (untouched) _kept.Keep(r.Job.Params.Partition, r.State.Sequence);
            _requests.Remove(r.State);
            r.Job.Abandon();
            _metrics.CancelledRequest();
        }
    }

    /// <summary>
    /// Ends every open request now (the shutdown's deadline, or Dispose): a running one, or any stream, finishes with what
    /// it has and finish reason "length" (it was cut short; OpenAI's clients know no other reason for that); a request that
    /// has nothing to answer yet gets a 503.
    /// </summary>
    private void EndAll()
    {
        foreach (var r in _requests.Values.ToList())
        {
            _loop.Cancel(r.State);
            _requests.Remove(r.State);
            if (r.State.Generated.Count > 0 || r.Job.Params.Stream) Complete(r, "length", "");
            else r.Job.Complete(ShuttingDown());
        }
        while (_queue.First is { } node)
        {
            _queue.RemoveFirst();
            var job = node.Value;
            if (job.Params.Stream) job.Complete(new FinishedEvent("length", new Usage(job.Params.PromptTokens.Length, 0, 0), [], ""));
            else job.Complete(ShuttingDown());
        }
        while (_incoming.TryTake(out var late)) late.Complete(ShuttingDown());
    }

    /// <summary>Sends each request what the step gave it: the echoed prompt, tokens' text and logprobs, the end.</summary>
    private void Report(StepResult step)
    {
        if (step.PrefillCalls > 0) _metrics.PrefillCall();
        if (step.Decode is not null) _metrics.DecodeStep();
        if (_log.IsEnabled(LogLevel.Debug)) LogStep(step);
        foreach (var state in step.Prefilled)
        {
            var p = _requests[state].Job.Params;
            _metrics.Prefilled(state.Strategy, p.PromptTokens.Length, state.CachedTokens);
            if (p.EchoText is not null)
                _requests[state].Job.Send(new TextEvent(p.EchoText, p.PromptLogprobs ? TokenLogprob.ForPrompt(state.PromptLogprobs!, p.PromptTokens, _model.Tokenizer) : null));
        }
        long now = Stopwatch.GetTimestamp();
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
                if (r.Job.FirstTokenAt == 0)
                {
                    r.Job.FirstTokenAt = now;
                    _metrics.FirstToken(Stopwatch.GetElapsedTime(r.Job.ReceivedAt, now).TotalSeconds, Stopwatch.GetElapsedTime(r.Job.AdmittedAt, now).TotalSeconds);
                }
                _metrics.Token(r.LastTokenAt == 0 ? null : Stopwatch.GetElapsedTime(r.LastTokenAt, now).TotalSeconds);
                r.LastTokenAt = now;
                r.Take(output);
            }
            if (output.Finish is { } reason) Finish(r, reason, output.FinalText);
        }
    }

    private void LogStep(StepResult step)
    {
        var chunks = _loop.Waiting.Concat(step.Prefilled).Where(s => _requests.ContainsKey(s) && s.Prefilled > 0)
            .Select(s => $"{_requests[s].Job.Id} {s.Prefilled}/{s.NewTokens.Length}");
        string decodeMs = (step.Decode?.Elapsed.TotalMilliseconds ?? 0).ToString("0.0", CultureInfo.InvariantCulture), pieces = string.Join(", ", chunks);
        ServerLog.Step(_log, step.Decode?.Sequences ?? 0, decodeMs, step.PrefillCalls, pieces, _queue.Count);
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
        // Keep the conversation before the client hears the reply ended: its next turn may arrive at once and
        // must find the reply's tokens remembered.
        if (r.Job.Params.Chat && !r.Job.Cancelled) KeepConversation(r);
        else Engine.Release(r.State.Sequence);
        Complete(r, reason.ApiName(), rest);
    }

    /// <summary>The request's last text and logprobs, then its end.</summary>
    private void Complete(RunningRequest r, string reason, string rest)
    {
        var logprobs = r.TakeLogprobs();
        if (rest.Length > 0 || logprobs?.Count > 0) r.Job.Send(new TextEvent(rest, logprobs));
        long now = Stopwatch.GetTimestamp();
        _metrics.Finished(reason, Stopwatch.GetElapsedTime(r.Job.ReceivedAt, now).TotalSeconds,
            r.Job.FirstTokenAt == 0 ? null : Stopwatch.GetElapsedTime(r.Job.FirstTokenAt, now).TotalSeconds);
        r.Job.Complete(new FinishedEvent(reason, r.Usage, r.State.Generated.ToArray(), r.State.Strategy));
    }

    /// <summary>Keeps a finished chat's KV for its next turn, and the reply's tokens for when the client sends the reply back.</summary>
    private void KeepConversation(RunningRequest r)
    {
        string partition = r.Job.Params.Partition;
        if (!r.State.TextStopped)
        {
            var reply = r.State.Generated.ToArray();
            if (reply.Length > 0 && _model.StopTokens.Contains(reply[^1])) reply = reply[..^1];
            _model.Replies.Remember(r.State.Text, reply, partition);
        }
        // An approximate prefill's KV is not what an exact one computes: a next turn prefilled on it would carry
        // the approximation under an exact strategy's name, and star/apb refuse a cached prefix. That turn starts over.
        if (r.Job.Params.Approximate is null) _kept.Keep(partition, r.State.Sequence);
        else Engine.Release(r.State.Sequence);
    }

    private void UpdateState(bool force)
    {
        // KvBytesPerRank runs on every rank: a few times a second is enough for a gauge.
        if (!force && Stopwatch.GetElapsedTime(_lastStateUpdate).TotalMilliseconds < 250) return;
        _lastStateUpdate = Stopwatch.GetTimestamp();
        long held = _requests.Keys.Sum(s => (long)s.Sequence.CachedTokens) + _kept.Tokens;
        _metrics.SchedulerState(_requests.Count, _queue.Count + _incoming.Count, _kept.Count, Engine.KvBytesPerRank(), (double)held / KvCapacity);
    }

    public void Dispose()
    {
        _incoming.CompleteAdding();
        _stop.Cancel();
        _thread.Join();
    }
}
