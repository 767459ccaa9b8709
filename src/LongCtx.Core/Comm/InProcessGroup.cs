using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using LongCtx.Tensors;

namespace LongCtx.Comm;

/// <summary>
/// N ranks as N threads of one process over host tensors (<see cref="IHostBytes"/>): the communicator CI runs the
/// context-parallel code with. A send copies its tensors into the pair's mailbox before it returns and the receiver
/// copies them out in <see cref="ICommRequest.Wait"/>, so a send never blocks and a ring runs its calls in the order
/// it does on GPUs; but both copies take the ranks' own threads, so no transfer overlaps computation here as a GPU's
/// does. Collectives meet in a <see cref="ThreadGroup"/>.
/// If one rank throws, the group is cancelled so the others do not wait forever.
/// </summary>
public sealed class InProcessGroup
{
    private readonly BlockingCollection<byte[][]>[,] _mailbox;
    private readonly ThreadGroup _threads;

    public InProcessGroup(int size) : this(new ThreadGroup(size)) { }

    private InProcessGroup(ThreadGroup threads)
    {
        _threads = threads;
        int size = threads.Size;
        _mailbox = new BlockingCollection<byte[][]>[size, size];
        for (int i = 0; i < size; i++)
            for (int j = 0; j < size; j++)
                _mailbox[i, j] = new BlockingCollection<byte[][]>();
    }

    public int Size => _threads.Size;

    public ICommunicator Communicator(int rank) => new Member(this, rank);

    /// <summary>
    /// A group of <paramref name="size"/> of this group's threads (a context-parallel ring or a tensor-parallel
    /// group) with communicators of its own, cancelled with this group: a rank that fails releases its peers'
    /// waits in every subgroup. Its members run inside this group's <see cref="Run{T}"/>.
    /// </summary>
    public InProcessGroup Subgroup(int size) => new(_threads.Subgroup(size));

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
                    _threads.Cancel();
                }
            }, maxStackSize: 4 << 20)
            { IsBackground = true, Name = $"rank {rank}" };
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
            group._mailbox[rank, sendTo].Add(message, group._threads.Token);
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
                    var part = Floats((Tensor)slots[r]!);
                    for (int i = 0; i < sum.Length; i++) sum[i] += part[i];
                }
            });
            sum.CopyTo(Floats(buffer)); // safe: every rank finished reading before Exchange returned
        }

        public void Broadcast(Tensor buffer, int root)
        {
            Exchange(buffer, slots =>
            {
                if (rank != root) Copy((Tensor)slots[root]!, buffer);
            });
        }

        public void Barrier() => group._threads.Barrier();

        public void Dispose() { }

        private void Exchange(object mine, Action<object?[]> read) => group._threads.Exchange(rank, mine, read);

        private static void Copy(Tensor source, Tensor destination)
        {
            var src = Cpu(source).RawBytes;
            var dst = Cpu(destination).RawBytes;
            if (src.Length != dst.Length) throw new ArgumentException($"message {source} does not fit {destination}");
            src.CopyTo(dst);
        }

        private static IHostBytes Cpu(Tensor t) =>
            t as IHostBytes ?? throw new ArgumentException($"the in-process communicator moves host tensors, not {t.GetType().Name}");

        private static Span<float> Floats(Tensor t) => t.DType == DType.F32
            ? MemoryMarshal.Cast<byte, float>(Cpu(t).RawBytes)
            : throw new ArgumentException($"all-reduce of {t}: the in-process communicator sums F32");
    }

    private sealed class Receipt(InProcessGroup group, int from, int to, IReadOnlyList<Tensor> receive) : ICommRequest
    {
        private bool _done;

        public void Wait()
        {
            if (_done) return;
            var message = group._mailbox[from, to].Take(group._threads.Token);
            if (message.Length != receive.Count) throw new InvalidOperationException($"rank {to} expected {receive.Count} tensors from rank {from}, got {message.Length}");
            for (int i = 0; i < message.Length; i++)
            {
                var dst = ((IHostBytes)receive[i]).RawBytes;
                if (dst.Length != message[i].Length)
                    throw new InvalidOperationException($"rank {to} expected {dst.Length} bytes from rank {from}, got {message[i].Length}");
                message[i].CopyTo(dst);
            }
            _done = true;
        }
    }
}
