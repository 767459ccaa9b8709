using System.Diagnostics;
using System.Threading.Channels;

namespace LongCtx.Server;

/// <summary>
/// A request handed to the scheduler: its parameters, the channel its events come back on, and a
/// cancel flag the endpoint sets when the client goes away (the scheduler then drops it and frees its KV).
/// </summary>
public sealed class GenerationJob(GenerationParams parameters)
{
    private readonly Channel<JobEvent> _events = Channel.CreateUnbounded<JobEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private volatile bool _cancelled;

    public GenerationParams Params { get; } = parameters;
    public long ReceivedAt { get; } = Stopwatch.GetTimestamp();
    public ChannelReader<JobEvent> Events => _events.Reader;
    public bool Cancelled => _cancelled;

    public void Cancel() => _cancelled = true;

    internal void Send(JobEvent e) => _events.Writer.TryWrite(e);

    internal void Complete(JobEvent last)
    {
        _events.Writer.TryWrite(last);
        _events.Writer.TryComplete();
    }

    internal void Abandon() => _events.Writer.TryComplete();
}
