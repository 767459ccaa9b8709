namespace LongCtx.Engine;

/// <summary>
/// One long-lived thread per rank that runs the ranks' shares of a call at once and waits for all of them. A
/// decode step is one such call: starting a thread per rank for each cost a noticeable part of a step, all of it with
/// the GPU idle; waking a parked thread takes a few µs.
/// </summary>
public sealed class RankThreads : IDisposable
{
    private readonly Thread[] _threads;
    private readonly SemaphoreSlim[] _go;
    private readonly CountdownEvent _done;
    private readonly Exception?[] _errors;
    private readonly object _running = new();
    private Action<int>? _body;
    private Action<Exception>? _onError;
    private volatile bool _stopping;

    /// <param name="stackBytes">each thread's stack (the rank bodies run the whole model).</param>
    public RankThreads(int count, int stackBytes = 4 << 20)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        _go = Enumerable.Range(0, count).Select(_ => new SemaphoreSlim(0)).ToArray();
        _done = new CountdownEvent(count);
        _errors = new Exception?[count];
        _threads = Enumerable.Range(0, count).Select(r => new Thread(() => Loop(r), stackBytes) { IsBackground = true, Name = $"rank {r}" }).ToArray();
        foreach (var t in _threads) t.Start();
    }

    /// <summary>
    /// Runs <paramref name="body"/>(rank) on every rank's thread and returns when all have finished, with each rank's
    /// exception (null where it succeeded). <paramref name="onError"/> runs on a failing rank's thread at once, so
    /// it can release peers that would otherwise wait for that rank forever.
    /// </summary>
    public Exception?[] Run(Action<int> body, Action<Exception>? onError = null)
    {
        if (Array.IndexOf(_threads, Thread.CurrentThread) >= 0)
            throw new InvalidOperationException("a rank's body cannot run the ranks again (it would wait for itself)");
        lock (_running)
        {
            ObjectDisposedException.ThrowIf(_stopping, this);
            Array.Clear(_errors);
            (_body, _onError) = (body, onError);
            _done.Reset();
            foreach (var go in _go) go.Release();
            _done.Wait();
            (_body, _onError) = (null, null);
            return (Exception?[])_errors.Clone();
        }
    }

    private void Loop(int rank)
    {
        while (true)
        {
            _go[rank].Wait();
            if (_stopping) return;
            try { _body!(rank); }
            catch (Exception e)
            {
                _errors[rank] = e;
                _onError?.Invoke(e);
            }
            finally { _done.Signal(); }
        }
    }

    public void Dispose()
    {
        lock (_running)
        {
            if (_stopping) return;
            _stopping = true;
            foreach (var go in _go) go.Release();
        }
        foreach (var t in _threads) t.Join();
    }
}
