using System.Net;
using System.Net.Sockets;

namespace LongCtx.Parallel.Distributed;

/// <summary>
/// Brings a multi-process group together over TCP. Every rank opens a listener on a free port and tells rank 0
/// (at MASTER_ADDR:MASTER_PORT) where it is; rank 0 answers everyone with the table of addresses and a blob it
/// chose (the NCCL unique id for GPU groups). Then every pair connects once, the lower rank accepting, giving
/// the full mesh of sockets the TCP communicator runs on.
/// </summary>
public static class TcpRendezvous
{
    public sealed record Result(byte[] Blob, Socket?[] Peers);

    public static Result Join(LaunchEnvironment env, byte[] blobFromRankZero, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        using var listener = new TcpListener(IPAddress.Any, 0);
        listener.Start(env.WorldSize);
        int myPort = ((IPEndPoint)listener.LocalEndpoint).Port;

        IPEndPoint[] table;
        byte[] blob;
        if (env.Rank == 0)
        {
            using var master = new TcpListener(IPAddress.Any, env.MasterPort);
            try { master.Start(env.WorldSize); }
            catch (SocketException e) { throw new LongCtxException($"rank 0 cannot listen on MASTER_PORT {env.MasterPort} ({e.Message}): choose a free port"); }
            table = new IPEndPoint[env.WorldSize];
            table[0] = new IPEndPoint(IPAddress.Loopback, myPort);
            var joined = new List<Socket>();
            for (int i = 1; i < env.WorldSize; i++)
            {
                var s = Accept(master, deadline, "rank 0 waiting for the other ranks");
                int rank = ReadInt(s), port = ReadInt(s);
                if (rank <= 0 || rank >= env.WorldSize || table[rank] is not null) throw new LongCtxException($"rendezvous: unexpected rank {rank}");
                table[rank] = new IPEndPoint(((IPEndPoint)s.RemoteEndPoint!).Address, port);
                joined.Add(s);
            }
            // Rank 0's own address as the others see it: the one they reached the master on.
            blob = blobFromRankZero;
            foreach (var s in joined)
            {
                var view = (IPEndPoint[])table.Clone();
                view[0] = new IPEndPoint(((IPEndPoint)s.LocalEndPoint!).Address, myPort);
                WriteTable(s, view, blob);
                s.Dispose();
            }
        }
        else
        {
            using var s = Connect(env.MasterAddress, env.MasterPort, deadline);
            WriteInt(s, env.Rank);
            WriteInt(s, myPort);
            (table, blob) = ReadTable(s, env.WorldSize);
        }

        var peers = new Socket?[env.WorldSize];
        for (int j = 0; j < env.Rank; j++)
        {
            var s = Connect(table[j].Address.ToString(), table[j].Port, deadline);
            WriteInt(s, env.Rank);
            peers[j] = s;
        }
        for (int n = env.Rank + 1; n < env.WorldSize; n++)
        {
            var s = Accept(listener, deadline, $"rank {env.Rank} waiting for its peers");
            int from = ReadInt(s);
            if (from <= env.Rank || from >= env.WorldSize || peers[from] is not null) throw new LongCtxException($"rendezvous: unexpected peer {from}");
            peers[from] = s;
        }
        foreach (var p in peers) if (p is not null) p.NoDelay = true;
        return new Result(blob, peers);
    }

    private static Socket Accept(TcpListener listener, DateTime deadline, string what)
    {
        var task = listener.AcceptSocketAsync();
        if (!task.Wait(Remaining(deadline))) throw new LongCtxException($"rendezvous timed out: {what}; are all {what.Split(' ')[0]} processes started with the same WORLD_SIZE and MASTER_ADDR?");
        return task.Result;
    }

    private static Socket Connect(string host, int port, DateTime deadline)
    {
        while (true)
        {
            var s = new Socket(SocketType.Stream, ProtocolType.Tcp);
            try
            {
                s.Connect(host, port);
                return s;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                s.Dispose();
                Thread.Sleep(100); // rank 0 may not be listening yet
            }
            catch (SocketException e)
            {
                s.Dispose();
                throw new LongCtxException($"rendezvous: cannot reach {host}:{port} ({e.Message}); check MASTER_ADDR and MASTER_PORT and that rank 0 runs");
            }
        }
    }

    private static TimeSpan Remaining(DateTime deadline) => deadline - DateTime.UtcNow is var t && t > TimeSpan.Zero ? t : TimeSpan.Zero;

    private static void WriteTable(Socket s, IPEndPoint[] table, byte[] blob)
    {
        WriteInt(s, blob.Length);
        s.Send(blob);
        foreach (var e in table)
        {
            var address = e.Address.MapToIPv6().GetAddressBytes();
            s.Send(address);
            WriteInt(s, e.Port);
        }
    }

    private static (IPEndPoint[], byte[]) ReadTable(Socket s, int size)
    {
        var blob = Read(s, ReadInt(s));
        var table = new IPEndPoint[size];
        for (int i = 0; i < size; i++)
        {
            var address = new IPAddress(Read(s, 16));
            table[i] = new IPEndPoint(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address, ReadInt(s));
        }
        return (table, blob);
    }

    internal static void WriteInt(Socket s, int v) => s.Send(BitConverter.GetBytes(v));

    internal static int ReadInt(Socket s) => BitConverter.ToInt32(Read(s, 4));

    internal static byte[] Read(Socket s, int n)
    {
        var buffer = new byte[n];
        int got = 0;
        while (got < n)
        {
            int r = s.Receive(buffer, got, n - got, SocketFlags.None);
            if (r == 0) throw new LongCtxException("a peer closed its connection during the rendezvous");
            got += r;
        }
        return buffer;
    }
}
