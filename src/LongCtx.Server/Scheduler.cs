using System.Collections.Concurrent;
using System.Diagnostics;
using LongCtx.Engine;
using LongCtx.Sampling;
using LongCtx.Text;
namespace LongCtx.Server;

/// <summary>
/// The one thread that owns the engine (it is not thread-safe). Each step it admits waiting requests —
/// their prefills fused into one engine call while their new tokens fit --max-batch-tokens — then runs one
/// decode step over every running request, one token each, and sends each its text through its channel.
/// </summary>
public sealed class Scheduler : IDisposable
{
    private readonly ServedModel _model;
    private readonly ServerOptions _options;
    private readonly ServerMetrics _metrics;
    private readonly BlockingCollection<GenerationJob> _incoming = new();
    private readonly List<GenerationJob> _waiting = [];
    private readonly List<RunningRequest> _running = [];
    private readonly KeptConversations _kept;
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _thread;
    private long _lastStateUpdate;

    public Scheduler(ServedModel model, ServerOptions options, ServerMetrics metrics)
    {
        _model = model;
        _options = options;
        _metrics = metrics;
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
                if (_running.Count == 0 && _waiting.Count == 0) _waiting.Add(_incoming.Take(_stop.Token));
                while (_incoming.TryTake(out var job)) _waiting.Add(job);
                try
                {
                    DropCancelled();
                    PrefillWaiting();
                    DecodeRunning();
                }
                catch (Exception e)
                {
                    // A bug or an engine failure: fail what is running rather than the server.
                    foreach (var r in _running.ToList()) Finish(r, error: new ApiException(500, $"internal error ({e.GetType().Name}: {e.Message})"));
                }
                UpdateState(force: _running.Count == 0);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or InvalidOperationException) { } // Dispose: stop taking work
        foreach (var r in _running) Engine.Release(r.Sequence);
        foreach (var j in _waiting.Concat(_incoming)) j.Complete(new FailedEvent(new ApiException(503, "the server is shutting down")));
        _kept.Clear();
    }

    private void DropCancelled()
    {
        foreach (var r in _running.Where(r => r.Job.Cancelled).ToList())
        {
            _running.Remove(r);
            Engine.Release(r.Sequence);
            r.Job.Abandon();
            _metrics.CancelledRequest();
        }
        foreach (var j in _waiting.Where(j => j.Cancelled).ToList())
        {
            _waiting.Remove(j);
            j.Abandon();
            _metrics.CancelledRequest();
        }
    }

    /// <summary>
    /// Prefills the oldest waiting request: an approximate one alone, on a fresh sequence (the engine runs
    /// star and apb one first turn at a time); one that wants its prompt's logprobs alone too (they are computed
    /// for every row of the prefill, a slice at a time where the logits are); an exact one with
    /// every later exact one of the same strategy that still fits the token budget, each on its kept
    /// conversation when a chat extends one.
    /// </summary>
    private void PrefillWaiting()
    {
        if (_waiting.Count == 0) return;
        var first = _waiting[0].Params;
        var batch = first.Approximate is null && !first.PromptLogprobs ? ExactBatch(first.Strategy) : [Alone(_waiting[0])];
        PrefillResult result;
        _metrics.PrefillCall();
        try
        {
            result = Engine.Prefill(batch.Select(b => (b.Request.Sequence, b.NewTokens)).ToList(), first.Strategy, approximate: first.Approximate,
                promptLogprobs: first.PromptLogprobs ? first.Logprobs : null);
        }
        catch (Exception e)
        {
            var error = e is LongCtxException ? ApiException.BadRequest(e.Message) : new ApiException(500, $"internal error ({e.GetType().Name}: {e.Message})");
            foreach (var (r, _) in batch) Finish(r, error: error);
            return;
        }
        for (int i = 0; i < batch.Count; i++)
        {
            var r = batch[i].Request;
            var p = r.Job.Params;
            r.Strategy = result.Strategy;
            _metrics.Prefilled(result.Strategy, p.PromptTokens.Length, r.CachedTokens);
            // Running before anything can throw: a failure then fails the request instead of leaving it waiting.
            _running.Add(r);
            var logits = result.Logits[i];
            if (p.EchoText is not null)
                r.Job.Send(new TextEvent(p.EchoText, p.PromptLogprobs ? TokenLogprob.ForPrompt(result.PromptLogprobs![i], p.PromptTokens, _model.Tokenizer) : null));
            // Echo with max_tokens 0 (a loglikelihood request) ends at its prompt.
            if (p.MaxTokens == 0)
            {
                Finish(r, "length");
                continue;
            }
            _metrics.FirstToken(Stopwatch.GetElapsedTime(r.Job.ReceivedAt).TotalSeconds);
            // The last row predicts the first new token.
            Accept(r, r.Draw(logits));
        }
    }

    /// <summary>Takes the waiting exact requests of the strategy, oldest first, while their new tokens fit --max-batch-tokens.</summary>
    private List<(RunningRequest Request, int[] NewTokens)> ExactBatch(string strategy)
    {
        var batch = new List<(RunningRequest, int[])>();
        int total = 0;
        foreach (var job in _waiting.Where(j => j.Params.Strategy == strategy && j.Params.Approximate is null && !j.Params.PromptLogprobs).ToList())
        {
            var prompt = job.Params.PromptTokens;
            var kept = job.Params.Chat ? _kept.Take(prompt) : null;
            int cached = kept?.CachedTokens ?? 0;
            if (batch.Count > 0 && total + prompt.Length - cached > _options.MaxBatchTokens)
            {
                if (kept is not null) _kept.Keep(kept);
                break;
            }
            var sequence = kept ?? Engine.NewSequence();
            var newTokens = Generation.UncachedSuffix(sequence, prompt);
            batch.Add((new RunningRequest(job, sequence, cached, _model.Tokenizer), newTokens));
            total += newTokens.Length;
            _waiting.Remove(job);
        }
        return batch;
    }

    /// <summary>Takes one waiting request to prefill by itself on a new sequence.</summary>
    private (RunningRequest Request, int[] NewTokens) Alone(GenerationJob job)
    {
        _waiting.Remove(job);
        return (new RunningRequest(job, Engine.NewSequence(), cachedTokens: 0, _model.Tokenizer), job.Params.PromptTokens);
    }

    private void DecodeRunning()
    {
        // Requests admitted this step already drew their first token; all of them now feed it back.
        var batch = _running.ToList();
        if (batch.Count == 0) return;
        var clock = Stopwatch.StartNew();
        var pending = batch.Select(r => (r.Sequence, r.Pending)).ToList();
        // Tokens are drawn, and logprobs computed (as many most likely tokens as any request lists), where the logits
        // are (on the GPU): only they come back.
        int? top = batch.Max(r => r.Job.Params.Logprobs);
        var (tokens, logprobs) = Engine.DecodeTokens(pending, batch.Select(r => r.Sampler.Draw()).ToList(), top);
        _metrics.DecodeStep(batch.Count, clock.Elapsed.TotalSeconds);
        for (int i = 0; i < batch.Count; i++) Accept(batch[i], batch[i].Take(tokens[i], logprobs?[i]));
    }

    /// <summary>Takes a drawn token: sends its text, and ends the request on a stop token, a stop sequence or a length limit.</summary>
    private void Accept(RunningRequest r, int token)
    {
        if (_model.StopTokens.Contains(token)) { Finish(r, "stop"); return; }
        string text = r.AddText(token);
        if (text.Length > 0) r.Job.Send(new TextEvent(text, r.TakeLogprobs()));
        if (r.StoppedByText) Finish(r, "stop");
        else if (r.Generated.Count >= r.Job.Params.MaxTokens || r.Sequence.CachedTokens + 1 >= Engine.Config.MaxPositionEmbeddings) Finish(r, "length");
    }

    private void Finish(RunningRequest r, string? reason = null, ApiException? error = null)
    {
        _running.Remove(r);
        if (error is not null)
        {
            Engine.Release(r.Sequence);
            r.Job.Complete(new FailedEvent(error));
            return;
        }
        string rest = r.FlushText();
        var logprobs = r.TakeLogprobs();
        if (rest.Length > 0 || logprobs?.Count > 0) r.Job.Send(new TextEvent(rest, logprobs));
        // Keep the conversation before the client hears the reply ended: its next turn may arrive at once and
        // must find the reply's tokens remembered.
        if (r.Job.Params.Chat && !r.Job.Cancelled) KeepConversation(r);
        else Engine.Release(r.Sequence);
        r.Job.Complete(new FinishedEvent(reason!, r.Usage, r.Generated.ToArray(), r.Strategy));
    }

    /// <summary>Keeps a finished chat's KV for its next turn, and the reply's tokens for when the client sends the reply back.</summary>
    private void KeepConversation(RunningRequest r)
    {
        if (!r.StoppedByText)
        {
            var reply = r.Generated.ToArray();
            if (reply.Length > 0 && _model.StopTokens.Contains(reply[^1])) reply = reply[..^1];
            _model.Replies.Remember(r.Text, reply);
        }
        // An approximate prefill's KV is not what an exact one computes: a next turn prefilled on it would carry
        // the approximation under an exact strategy's name, and star/apb refuse a cached prefix. That turn starts over.
        if (r.Job.Params.Approximate is null) _kept.Keep(r.Sequence);
        else Engine.Release(r.Sequence);
    }

    private void UpdateState(bool force)
    {
        // KvBytesPerRank runs on every rank: a few times a second is enough for a gauge.
        if (!force && Stopwatch.GetElapsedTime(_lastStateUpdate).TotalMilliseconds < 250) return;
        _lastStateUpdate = Stopwatch.GetTimestamp();
        _metrics.SchedulerState(_running.Count, _waiting.Count, _kept.Count, Engine.KvBytesPerRank());
    }

    public void Dispose()
    {
        _incoming.CompleteAdding();
        _stop.Cancel();
        _thread.Join();
    }
}
