using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using LongCtx.Backends.Cpu;
using LongCtx.Tensors;

namespace LongCtx.Parallel;

/// <summary>
/// N ranks as N threads of one process over CPU tensors: the communicator CI runs the context-parallel
/// code with. Point-to-point messages are copied into per-pair mailboxes, so a send never blocks and a
/// ring step's transfer really is in flight while the rank computes. Collectives meet at a barrier.
/// If one rank throws, the group is cancelled so the others do not wait forever.
/// </summary>
public sealed class InProcessGroup
{
    private readonly BlockingCollection<byte[][]>[,] _mailbox;
    private readonly Barrier _barrier;
    private readonly object?[] _slots;
    private readonly CancellationTokenSource _cancel;

    public InProcessGroup(int size) : this(size, new CancellationTokenSource()) { }

    private InProcessGroup(int size, CancellationTokenSource cancel)
    {
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(size));
        Size = size;
        _cancel = cancel;
        _mailbox = new BlockingCollection<byte[][]>[size, size];
        for (int i = 0; i < size; i++)
            for (int j = 0; j < size; j++)
                _mailbox[i, j] = new BlockingCollection<byte[][]>();
        _barrier = new Barrier(size);
        _slots = new object?[size];
    }

    public int Size { get; }

    public ICommunicator Communicator(int rank) => new Member(this, rank);

    /// <summary>
    /// A group of <paramref name="size"/> of this group's threads (a context-parallel ring or a tensor-parallel
    /// group) with communicators of its own, cancelled with this group: a rank that fails releases its peers'
    /// waits in every subgroup. Its members run inside this group's <see cref="Run{T}"/>.
    /// </summary>
    public InProcessGroup Subgroup(int size) => new(size, _cancel);

    /// <summary>Runs body on every rank, one thread each, and returns every rank's result in rank order.</summary>
    public T[] Run<T>(Func<ICommunicator, T> body)
    {
        var results = new T[Size];
        var errors = new Exception?[Size];
        var threads = new Thread[Size];
        for (int r = 0; r < Size; r++)
        {
            int rank = r;
            threads[r] = new Thread(() =>
            {
                try { results[rank] = body(Communicator(rank)); }
                catch (Exception e)
                {
                    errors[rank] = e;
                    _cancel.Cancel();
                }
            }, maxStackSize: 4 << 20) { IsBackground = true, Name = $"rank {rank}" };
            threads[r].Start();
        }
        foreach (var t in threads) t.Join();
        var first = errors.FirstOrDefault(e => e is not null and not OperationCanceledException) ?? errors.FirstOrDefault(e => e is not null);
        if (first is not null) ExceptionDispatchInfo.Capture(first).Throw();
        return results;
    }

    private sealed class Member(InProcessGroup group, int rank) : ICommunicator
    {
        public int Rank => rank;
        public int Size => group.Size;

        public ICommRequest SendReceive(IReadOnlyList<Tensor> send, int sendTo, IReadOnlyList<Tensor> receive, int receiveFrom)
        {
            var message = new byte[send.Count][];
            for (int i = 0; i < send.Count; i++) message[i] = Cpu(send[i]).RawBytes.ToArray();
            group._mailbox[rank, sendTo].Add(message, group._cancel.Token);
            return new Receipt(group, receiveFrom, rank, receive);
        }

        public void AllGather(Tensor send, Tensor receive)
        {
            var bytes = Cpu(send).RawBytes.Length;
            if (Cpu(receive).RawBytes.Length != bytes * Size)
                throw new ArgumentException($"all-gather: receive {receive} must hold {Size} x {send}");
            Exchange(send, slots =>
            {
                var dst = Cpu(receive).RawBytes;
                for (int r = 0; r < Size; r++) Cpu((Tensor)slots[r]!).RawBytes.CopyTo(dst.Slice(r * bytes, bytes));
            });
        }

        public void AllToAll(IReadOnlyList<Tensor> send, IReadOnlyList<Tensor> receive)
        {
            Exchange(send, slots =>
            {
                for (int r = 0; r < Size; r++) Copy(((IReadOnlyList<Tensor>)slots[r]!)[rank], receive[r]);
            });
        }

        public void AllReduceSum(Tensor buffer)
        {
            var sum = new float[buffer.Length];
            Exchange(buffer, slots =>
            {
                // Every rank adds in rank order, so every rank gets bit-identical sums.
                for (int r = 0; r < Size; r++)
                {
                    var part = Cpu((Tensor)slots[r]!).F32;
                    for (int i = 0; i < sum.Length; i++) sum[i] += part[i];
                }
            });
            sum.CopyTo(Cpu(buffer).F32); // safe: every rank finished reading before Exchange returned
        }

        public void Broadcast(Tensor buffer, int root)
        {
            Exchange(buffer, slots =>
            {
                if (rank != root) Copy((Tensor)slots[root]!, buffer);
            });
        }

        public void Barrier() => group._barrier.SignalAndWait(group._cancel.Token);

        public void Dispose() { }

        /// <summary>Publishes this rank's object, lets every rank read all of them, then frees the slots.</summary>
        private void Exchange(object mine, Action<object?[]> read)
        {
            group._slots[rank] = mine;
            group._barrier.SignalAndWait(group._cancel.Token);
            read(group._slots);
            group._barrier.SignalAndWait(group._cancel.Token);
        }

        private static void Copy(Tensor source, Tensor destination)
        {
            var src = Cpu(source).RawBytes;
            var dst = Cpu(destination).RawBytes;
            if (src.Length != dst.Length) throw new ArgumentException($"message {source} does not fit {destination}");
            src.CopyTo(dst);
        }

        private static CpuTensor Cpu(Tensor t) =>
            t as CpuTensor ?? throw new ArgumentException($"the in-process communicator moves CPU tensors, not {t.GetType().Name}");
    }

    private sealed class Receipt(InProcessGroup group, int from, int to, IReadOnlyList<Tensor> receive) : ICommRequest
    {
        private bool _done;

        public void Wait()
        {
            if (_done) return;
            var message = group._mailbox[from, to].Take(group._cancel.Token);
            if (message.Length != receive.Count) throw new InvalidOperationException($"rank {to} expected {receive.Count} tensors from rank {from}, got {message.Length}");
            for (int i = 0; i < message.Length; i++)
            {
                var dst = ((CpuTensor)receive[i]).RawBytes;
                if (dst.Length != message[i].Length)
                    throw new InvalidOperationException($"rank {to} expected {dst.Length} bytes from rank {from}, got {message[i].Length}");
                message[i].CopyTo(dst);
            }
            _done = true;
        }
    }
}
