using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using LongCtx.Tensors;

namespace LongCtx.Comm;

/// <summary>
/// The communicator of CPU ranks in separate processes (or machines), over the TCP mesh the rendezvous
/// built. Each peer has a sender thread draining an outbox and a receiver thread filling two inboxes —
/// ring transfers and collectives apart, so a collective never takes a message a pending ring step waits
/// for. Sends therefore never block the rank, and a ring step's transfer really runs while it computes,
/// as in the in-process group. Every rank calls collectives in the same order, so FIFO per peer suffices.
/// </summary>
public sealed class TcpCommunicator : ICommunicator
{
    private const byte PointToPoint = 0, Collective = 1;
    private readonly Socket?[] _peers;
    private readonly BlockingCollection<(byte Channel, byte[] Payload)>[] _outbox;
    private readonly BlockingCollection<byte[]>[,] _inbox;
    private readonly CancellationTokenSource _failed = new();
    private string? _failure;

    public TcpCommunicator(int rank, Socket?[] peers)
    {
        Rank = rank;
        _peers = peers;
        Size = peers.Length;
        _outbox = new BlockingCollection<(byte, byte[])>[Size];
        _inbox = new BlockingCollection<byte[]>[Size, 2];
        for (int p = 0; p < Size; p++)
        {
            _outbox[p] = new BlockingCollection<(byte, byte[])>();
            _inbox[p, 0] = new BlockingCollection<byte[]>();
            _inbox[p, 1] = new BlockingCollection<byte[]>();
            if (p == rank) continue;
            if (peers[p] is null) throw new ArgumentException($"no connection from rank {rank} to rank {p}");
            int peer = p;
            Start(() => SendLoop(peer), $"send {rank}->{peer}");
            Start(() => ReceiveLoop(peer), $"receive {peer}->{rank}");
        }
    }

    public int Rank { get; }
    public int Size { get; }

    public ICommRequest SendReceive(IReadOnlyList<Tensor> send, int sendTo, IReadOnlyList<Tensor> receive, int receiveFrom)
    {
        foreach (var t in send) Post(sendTo, PointToPoint, Bytes(t));
        return new Receipt(this, receiveFrom, receive);
    }

    public void AllGather(Tensor send, Tensor receive)
    {
        var mine = Bytes(send);
        var dst = Cpu(receive).RawBytes;
        if (dst.Length != mine.Length * Size) throw new ArgumentException($"all-gather: receive {receive} must hold {Size} x {send}");
        PostToOthers(mine);
        for (int r = 0; r < Size; r++) (r == Rank ? mine : Take(r, Collective)).CopyTo(dst.Slice(r * mine.Length, mine.Length));
    }

    public void AllToAll(IReadOnlyList<Tensor> send, IReadOnlyList<Tensor> receive)
    {
        for (int r = 0; r < Size; r++)
            if (r != Rank) Post(r, Collective, Bytes(send[r]));
        for (int r = 0; r < Size; r++) Into(r == Rank ? Bytes(send[r]) : Take(r, Collective), receive[r], r);
    }

    public void AllReduceSum(Tensor buffer)
    {
        var mine = Bytes(buffer);
        PostToOthers(mine);
        var sum = new float[buffer.Length];
        // Every rank adds the parts in rank order, so every rank gets bit-identical sums.
        for (int r = 0; r < Size; r++)
        {
            var part = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(r == Rank ? mine : Take(r, Collective));
            for (int i = 0; i < sum.Length; i++) sum[i] += part[i];
        }
        sum.CopyTo(buffer.DType == DType.F32 ? MemoryMarshal.Cast<byte, float>(Cpu(buffer).RawBytes) : throw new ArgumentException($"all-reduce of {buffer}: the TCP communicator sums F32"));
    }

    public void Broadcast(Tensor buffer, int root)
    {
        if (Rank == root) PostToOthers(Bytes(buffer));
        else Into(Take(root, Collective), buffer, root);
    }

    public void Barrier()
    {
        PostToOthers([]);
        for (int r = 0; r < Size; r++)
            if (r != Rank) Take(r, Collective);
    }

    public void Dispose()
    {
        foreach (var o in _outbox) o.CompleteAdding();
        foreach (var s in _peers) s?.Dispose();
    }

    private void PostToOthers(byte[] payload)
    {
        for (int r = 0; r < Size; r++)
            if (r != Rank) Post(r, Collective, payload);
    }

    private void Post(int to, byte channel, byte[] payload)
    {
        if (to == Rank) _inbox[to, channel].Add(payload);
        else _outbox[to].Add((channel, payload), _failed.Token);
    }

    private byte[] Take(int from, byte channel)
    {
        try { return _inbox[from, channel].Take(_failed.Token); }
        catch (OperationCanceledException) { throw new LongCtxException($"rank {Rank}: {_failure ?? "the group failed"}"); }
    }

    private void SendLoop(int peer)
    {
        var socket = _peers[peer]!;
        try
        {
            foreach (var (channel, payload) in _outbox[peer].GetConsumingEnumerable())
            {
                var header = new byte[9];
                header[0] = channel;
                BitConverter.TryWriteBytes(header.AsSpan(1), (long)payload.Length);
                socket.Send(header);
                for (int sent = 0; sent < payload.Length;) sent += socket.Send(payload, sent, payload.Length - sent, SocketFlags.None);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { Fail($"lost the connection to rank {peer} ({e.Message})"); }
    }

    private void ReceiveLoop(int peer)
    {
        var socket = _peers[peer]!;
        try
        {
            while (true)
            {
                var header = new byte[9];
                if (!ReadFully(socket, header)) return; // the peer closed: the group is finishing
                var payload = new byte[BitConverter.ToInt64(header, 1)];
                if (!ReadFully(socket, payload)) throw new SocketException((int)SocketError.ConnectionReset);
                _inbox[peer, header[0]].Add(payload);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { Fail($"lost the connection to rank {peer} ({e.Message})"); }
    }

    private static bool ReadFully(Socket s, byte[] buffer)
    {
        for (int got = 0; got < buffer.Length;)
        {
            int r = s.Receive(buffer, got, buffer.Length - got, SocketFlags.None);
            if (r == 0) return got == 0 && buffer.Length > 0 ? false : throw new SocketException((int)SocketError.ConnectionReset);
            got += r;
        }
        return true;
    }

    private void Fail(string why)
    {
        _failure ??= why;
        _failed.Cancel();
    }

    private static void Start(Action loop, string name) => new Thread(() => loop()) { IsBackground = true, Name = name }.Start();

    private static byte[] Bytes(Tensor t) => Cpu(t).RawBytes.ToArray();

    private static void Into(byte[] message, Tensor destination, int from)
    {
        var dst = Cpu(destination).RawBytes;
        if (dst.Length != message.Length) throw new InvalidOperationException($"expected {dst.Length} bytes from rank {from}, got {message.Length}");
        message.CopyTo(dst);
    }

    private static IHostBytes Cpu(Tensor t) =>
        t as IHostBytes ?? throw new ArgumentException($"the TCP communicator moves host tensors, not {t.GetType().Name}");

    private sealed class Receipt(TcpCommunicator comm, int from, IReadOnlyList<Tensor> receive) : ICommRequest
    {
        private bool _done;

        public void Wait()
        {
            if (_done) return;
            foreach (var t in receive) Into(comm.Take(from, PointToPoint), t, from);
            _done = true;
        }
    }
}
