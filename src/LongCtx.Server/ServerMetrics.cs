using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace LongCtx.Server;

/// <summary>
/// The series /metrics exposes in Prometheus text format, named and shaped like vLLM's (vllm:num_requests_running is
/// longctx_num_requests_running, and so on: README lists them), beside LongCtx's own. Written by the endpoints and the
/// scheduler; thread-safe.
/// </summary>
public sealed class ServerMetrics
{
    // vLLM's buckets: first tokens of long prompts take minutes.
    private static readonly double[] FirstTokenBounds = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
    private static readonly double[] TokenBounds = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
    private static readonly double[] RequestBounds = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];

    private readonly ConcurrentDictionary<(string Route, int Status), long> _requests = new();
    private readonly ConcurrentDictionary<string, long> _strategies = new(), _finished = new();
    private readonly PrometheusHistogram _ttft = new("longctx_time_to_first_token_seconds", "Time from receiving a request to its first token.", FirstTokenBounds);
    private readonly PrometheusHistogram _tpot = new("longctx_time_per_output_token_seconds", "Time between a request's consecutive tokens.", TokenBounds);
    private readonly PrometheusHistogram _e2e = new("longctx_e2e_request_latency_seconds", "Time from receiving a request to its last token.", RequestBounds);
    private readonly PrometheusHistogram _queue = new("longctx_request_queue_time_seconds", "Time a request waited before the engine took it.", RequestBounds);
    private readonly PrometheusHistogram _prefillTime = new("longctx_request_prefill_time_seconds", "Time from the engine taking a request to its first token.", RequestBounds);
    private readonly PrometheusHistogram _decodeTime = new("longctx_request_decode_time_seconds", "Time from a request's first token to its last.", RequestBounds);
    private long _generated, _prompt, _cached, _cacheHits, _cancelled, _prefillCalls, _decodeSteps;
    private long[] _kvBytes = [];
    private int _running, _waiting, _kept;
    private double _kvUsage, _recentRequestSeconds = 1;

    public long GeneratedTokens => Interlocked.Read(ref _generated);
    public long CachedPromptTokens => Interlocked.Read(ref _cached);
    public long Cancelled => Interlocked.Read(ref _cancelled);
    public IReadOnlyList<long> KvBytesPerRank => Volatile.Read(ref _kvBytes);
    /// <summary>A moving average of recent requests' end-to-end seconds: what a 429's Retry-After suggests.</summary>
    public double RecentRequestSeconds => Volatile.Read(ref _recentRequestSeconds);

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
    public void Admitted(double queueSeconds) => _queue.Observe(queueSeconds);
    public void FirstToken(double sinceReceived, double sinceAdmitted)
    {
        _ttft.Observe(sinceReceived);
        _prefillTime.Observe(sinceAdmitted);
    }
    /// <summary>A token drawn; <paramref name="sincePrevious"/>: the time since the request's previous token (null for its first).</summary>
    public void Token(double? sincePrevious)
    {
        if (sincePrevious is { } s) _tpot.Observe(s);
        Interlocked.Increment(ref _generated);
    }
    public void DecodeStep() => Interlocked.Increment(ref _decodeSteps);
    public void Finished(string reason, double endToEnd, double? decoding)
    {
        _finished.AddOrUpdate(reason, 1, (_, n) => n + 1);
        _e2e.Observe(endToEnd);
        if (decoding is { } d) _decodeTime.Observe(d);
        Volatile.Write(ref _recentRequestSeconds, 0.9 * RecentRequestSeconds + 0.1 * endToEnd);
    }
    public void CancelledRequest() => Interlocked.Increment(ref _cancelled);
    public void SchedulerState(int running, int waiting, int kept, long[] kvBytes, double kvUsage)
    {
        (_running, _waiting, _kept) = (running, waiting, kept);
        Volatile.Write(ref _kvBytes, kvBytes);
        Volatile.Write(ref _kvUsage, kvUsage);
    }

    public string Render()
    {
        var sb = new StringBuilder();
        Counter(sb, "longctx_requests_total", "HTTP requests answered, by route and status (499: the client went away first).",
            _requests.OrderBy(kv => kv.Key).Select(kv => ($"route=\"{kv.Key.Route}\",status=\"{kv.Key.Status}\"", (double)kv.Value)));
        Gauge(sb, "longctx_num_requests_running", "Requests in the engine: prefilling or decoding.", [("", _running)]);
        Gauge(sb, "longctx_num_requests_waiting", "Requests waiting for the engine to take them.", [("", _waiting)]);
        Gauge(sb, "longctx_kv_cache_usage_perc", "Share of the KV budget (--max-kv-tokens) held, 0 to 1.", [("", Volatile.Read(ref _kvUsage))]);
        Counter(sb, "longctx_prompt_tokens_total", "Prompt tokens of requests prefilled.", [("", Interlocked.Read(ref _prompt))]);
        Counter(sb, "longctx_generation_tokens_total", "Tokens generated.", [("", GeneratedTokens)]);
        Counter(sb, "longctx_request_success_total", "Requests finished, by finish reason.",
            _finished.OrderBy(kv => kv.Key).Select(kv => ($"finished_reason=\"{kv.Key}\"", (double)kv.Value)));
        _ttft.WriteTo(sb);
        _tpot.WriteTo(sb);
        _e2e.WriteTo(sb);
        _queue.WriteTo(sb);
        _prefillTime.WriteTo(sb);
        _decodeTime.WriteTo(sb);
        Counter(sb, "longctx_prompt_cached_tokens_total", "Prompt tokens whose KV a kept conversation already held.", [("", CachedPromptTokens)]);
        Counter(sb, "longctx_prefix_cache_hits_total", "Requests that reused a kept conversation's KV.", [("", Interlocked.Read(ref _cacheHits))]);
        Counter(sb, "longctx_requests_cancelled_total", "Requests dropped because the client went away.", [("", Cancelled)]);
        Counter(sb, "longctx_prefill_calls_total", "Engine prefill calls (each fuses prefill chunks of one or more requests).", [("", Interlocked.Read(ref _prefillCalls))]);
        Counter(sb, "longctx_decode_steps_total", "Batched decode steps (one token for every running request).", [("", Interlocked.Read(ref _decodeSteps))]);
        Counter(sb, "longctx_strategy_chosen_total", "Prefills of requests by the attention strategy that ran.",
            _strategies.OrderBy(kv => kv.Key).Select(kv => ($"strategy=\"{kv.Key}\"", (double)kv.Value)));
        Gauge(sb, "longctx_kv_cache_bytes", "KV cache bytes held on each rank.", KvBytesPerRank.Select((b, r) => ($"rank=\"{r}\"", (double)b)));
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
