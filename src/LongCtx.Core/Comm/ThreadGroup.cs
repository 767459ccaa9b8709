namespace LongCtx.Comm;

/// <summary>
/// Ranks as threads of one process that meet at a barrier: in a collective each rank publishes an object in its slot,
/// every rank reads all the slots, and they meet again before any slot is reused. The in-process CPU group and the GPU
/// device-copy group build their collectives on it. A group and its subgroups share one cancellation, so a rank that
/// fails releases its peers from every wait.
/// </summary>
public sealed class ThreadGroup
{
    private readonly Barrier _barrier;
    private readonly object?[] _slots;
    private readonly CancellationTokenSource _cancel;

    public ThreadGroup(int size) : this(size, new CancellationTokenSource()) { }

    private ThreadGroup(int size, CancellationTokenSource cancel)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        Size = size;
        _cancel = cancel;
        _barrier = new Barrier(size);
        _slots = new object?[size];
    }

    public int Size { get; }

    /// <summary>Cancelled when any rank of the group or of a subgroup fails.</summary>
    public CancellationToken Token => _cancel.Token;

    public void Cancel() => _cancel.Cancel();

    /// <summary>A group of <paramref name="size"/> of these threads (a ring or a tensor-parallel group), cancelled with this one.</summary>
    public ThreadGroup Subgroup(int size) => new(size, _cancel);

    public void Barrier() => _barrier.SignalAndWait(_cancel.Token);

    /// <summary>Publishes <paramref name="rank"/>'s object, lets every rank read all of them, then frees the slots.</summary>
    public void Exchange(int rank, object mine, Action<object?[]> read)
    {
        _slots[rank] = mine;
        Barrier();
        read(_slots);
        Barrier();
    }
}
