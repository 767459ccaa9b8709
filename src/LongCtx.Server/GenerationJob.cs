using System.Diagnostics;
using System.Threading.Channels;

namespace LongCtx.Server;

/// <summary>
/// A request handed to the scheduler: its parameters, the channel its events come back on, a cancel flag the endpoint
/// sets when the client goes away (the scheduler then drops it and frees its KV), and when it reached each stage (for
/// the access log and the metrics).
/// </summary>
public sealed class GenerationJob(GenerationParams parameters, string id = "")
{
    private readonly Channel<JobEvent> _events = Channel.CreateUnbounded<JobEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private volatile bool _cancelled;
    private long _admittedAt, _firstTokenAt;

    public GenerationParams Params { get; } = parameters;
    /// <summary>The response's id (chatcmpl-..., cmpl-...), which the access log names it by.</summary>
    public string Id { get; } = id;
    public long ReceivedAt { get; } = Stopwatch.GetTimestamp();
    public ChannelReader<JobEvent> Events => _events.Reader;
    public bool Cancelled => _cancelled;

    /// <summary>When the engine took it (its queue time ends); 0 before.</summary>
    public long AdmittedAt { get => Interlocked.Read(ref _admittedAt); internal set => Interlocked.Exchange(ref _admittedAt, value); }
    /// <summary>When its first token was drawn; 0 before.</summary>
    public long FirstTokenAt { get => Interlocked.Read(ref _firstTokenAt); internal set => Interlocked.Exchange(ref _firstTokenAt, value); }
    /// <summary>Seconds from arrival to the first token; null before it.</summary>
    public double? TimeToFirstToken => FirstTokenAt == 0 ? null : Stopwatch.GetElapsedTime(ReceivedAt, FirstTokenAt).TotalSeconds;

    public void Cancel() => _cancelled = true;

    internal void Send(JobEvent e) => _events.Writer.TryWrite(e);

    internal void Complete(JobEvent last)
    {
        _events.Writer.TryWrite(last);
        _events.Writer.TryComplete();
    }

    internal void Abandon() => _events.Writer.TryComplete();
}
