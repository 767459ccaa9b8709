using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace LongCtx.Server;

/// <summary>The counters /metrics exposes in Prometheus text format. Written by the endpoints and the scheduler; thread-safe.</summary>
public sealed class ServerMetrics
{
    private static readonly double[] LatencyBounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

    private readonly ConcurrentDictionary<(string Route, int Status), long> _requests = new();
    private readonly ConcurrentDictionary<string, long> _strategies = new();
    private readonly PrometheusHistogram _ttft = new("longctx_time_to_first_token_seconds", "Time from receiving a request to its first token.", LatencyBounds);
    private readonly PrometheusHistogram _tpot = new("longctx_time_per_output_token_seconds", "Duration of the decode step that produced each later token.", LatencyBounds);
    private long _generated, _prompt, _cached, _cacheHits, _cancelled, _prefillCalls, _decodeSteps;
    private double _tokensPerSecond;
    private long[] _kvBytes = [];
    private int _running, _waiting, _kept;

    public long GeneratedTokens => Interlocked.Read(ref _generated);
    public long CachedPromptTokens => Interlocked.Read(ref _cached);
    public long Cancelled => Interlocked.Read(ref _cancelled);
    public IReadOnlyList<long> KvBytesPerRank => Volatile.Read(ref _kvBytes);

    public void Request(string route, int status) => _requests.AddOrUpdate((route, status), 1, (_, n) => n + 1);
    /// <summary>One engine prefill call, however many requests it fused.</summary>
    public void PrefillCall() => Interlocked.Increment(ref _prefillCalls);
    public void Prefilled(string strategy, int promptTokens, int cachedTokens)
    {
        _strategies.AddOrUpdate(strategy, 1, (_, n) => n + 1);
        Interlocked.Add(ref _prompt, promptTokens);
        Interlocked.Add(ref _cached, cachedTokens);
        if (cachedTokens > 0) Interlocked.Increment(ref _cacheHits);
    }
    public void FirstToken(double seconds) { _ttft.Observe(seconds); Interlocked.Increment(ref _generated); }
    public void DecodeStep(int tokens, double seconds)
    {
        for (int i = 0; i < tokens; i++) _tpot.Observe(seconds);
        Interlocked.Add(ref _generated, tokens);
        Interlocked.Increment(ref _decodeSteps);
        Volatile.Write(ref _tokensPerSecond, seconds > 0 ? tokens / seconds : 0);
    }
    public void CancelledRequest() => Interlocked.Increment(ref _cancelled);
    public void SchedulerState(int running, int waiting, int kept, long[] kvBytes)
    {
        (_running, _waiting, _kept) = (running, waiting, kept);
        Volatile.Write(ref _kvBytes, kvBytes);
        if (running == 0) Volatile.Write(ref _tokensPerSecond, 0);
    }

    public string Render()
    {
        var sb = new StringBuilder();
        Counter(sb, "longctx_requests_total", "HTTP requests answered, by route and status.",
            _requests.OrderBy(kv => kv.Key).Select(kv => ($"route=\"{kv.Key.Route}\",status=\"{kv.Key.Status}\"", (double)kv.Value)));
        _ttft.WriteTo(sb);
        _tpot.WriteTo(sb);
        Counter(sb, "longctx_generated_tokens_total", "Tokens generated.", [("", GeneratedTokens)]);
        Counter(sb, "longctx_prompt_tokens_total", "Prompt tokens of requests admitted.", [("", Interlocked.Read(ref _prompt))]);
        Counter(sb, "longctx_prompt_cached_tokens_total", "Prompt tokens whose KV a kept conversation already held.", [("", CachedPromptTokens)]);
        Counter(sb, "longctx_prefix_cache_hits_total", "Requests that reused a kept conversation's KV.", [("", Interlocked.Read(ref _cacheHits))]);
        Counter(sb, "longctx_requests_cancelled_total", "Requests dropped because the client went away.", [("", Cancelled)]);
        Counter(sb, "longctx_prefill_calls_total", "Engine prefill calls (each fuses the prefills of one or more requests).", [("", Interlocked.Read(ref _prefillCalls))]);
        Counter(sb, "longctx_decode_steps_total", "Batched decode steps (one token for every running request).", [("", Interlocked.Read(ref _decodeSteps))]);
        Counter(sb, "longctx_strategy_chosen_total", "Prefills of requests by the attention strategy that ran.",
            _strategies.OrderBy(kv => kv.Key).Select(kv => ($"strategy=\"{kv.Key}\"", (double)kv.Value)));
        Gauge(sb, "longctx_tokens_per_second", "Decode throughput of the last step over all running requests.", [("", Volatile.Read(ref _tokensPerSecond))]);
        Gauge(sb, "longctx_kv_cache_bytes", "KV cache bytes held on each rank.", KvBytesPerRank.Select((b, r) => ($"rank=\"{r}\"", (double)b)));
        Gauge(sb, "longctx_requests_running", "Requests being decoded.", [("", _running)]);
        Gauge(sb, "longctx_requests_waiting", "Requests waiting for their prefill.", [("", _waiting)]);
        Gauge(sb, "longctx_kept_conversations", "Finished chat conversations whose KV is kept for their next turn.", [("", _kept)]);
        return sb.ToString();
    }

    private static void Counter(StringBuilder sb, string name, string help, IEnumerable<(string Labels, double Value)> samples) => Write(sb, name, help, "counter", samples);
    private static void Gauge(StringBuilder sb, string name, string help, IEnumerable<(string Labels, double Value)> samples) => Write(sb, name, help, "gauge", samples);

    private static void Write(StringBuilder sb, string name, string help, string type, IEnumerable<(string Labels, double Value)> samples)
    {
        sb.Append($"# HELP {name} {help}\n# TYPE {name} {type}\n");
        foreach (var (labels, value) in samples)
            sb.Append(CultureInfo.InvariantCulture, $"{name}{(labels.Length == 0 ? "" : "{" + labels + "}")} {value}\n");
    }
}
